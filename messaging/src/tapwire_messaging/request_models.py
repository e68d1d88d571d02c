"""What trigger specs and journey definitions share as request models: frozen pydantic models that refuse unknown
keys, are stored as JSON and read back unchanged, and whose validation errors become one refusal naming each bad
field; and the segment a user must be in, given by id or as a CQL ``where``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError


class StrictModel(BaseModel):
    """Frozen; unknown keys refused; fields may be given by name or alias."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_stored(cls, raw: Mapping[str, Any]) -> Self:
        return cls.model_validate(raw)


def describe_errors(exc: ValidationError, *, root: str, tags: frozenset[str]) -> str:
    """``root.field.path: reason; …`` for the first five errors, without the union ``tags`` pydantic puts in the
    paths of a discriminated union's members."""
    parts = []
    for err in exc.errors()[:5]:
        path = [str(p) for p in err.get("loc", ()) if p not in tags]
        parts.append(f"{'.'.join([root, *path])}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def segment_audience(segment_id: str | None, where: dict[str, Any] | None) -> dict[str, Any] | None:
    """The segment given by ``segment_id`` or ``where`` in the audience resolver's shape; None for neither."""
    if segment_id is not None:
        return {"segment_id": segment_id}
    if where is not None:
        return {"where": where}
    return None

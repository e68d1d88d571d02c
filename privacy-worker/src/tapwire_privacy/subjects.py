"""Naming a subject: the identifiers a request may carry, turned into subject keys (``<kind>:<value>``)."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

# API field -> subject-key prefix. Segment's userId is the identity; its anonymousId the anonymous id.
FIELD_PREFIXES: Final = {
    "identity": "i",
    "userId": "i",
    "objectId": "o",
    "email": "e",
    "phone": "p",
    "anonymousId": "a",
}
_MAX_VALUE = 1024


class SubjectIn(BaseModel):
    """The subject of a request, named by any of its identifiers (each a string or a list of strings)."""

    model_config = ConfigDict(extra="forbid")

    identity: str | list[str] | None = None
    userId: str | list[str] | None = None
    objectId: str | list[str] | None = None
    email: str | list[str] | None = None
    phone: str | list[str] | None = None
    anonymousId: str | list[str] | None = None

    @model_validator(mode="after")
    def _named(self) -> SubjectIn:
        keys = self.keys()
        if not keys:
            raise ValueError("name the subject by at least one of " + ", ".join(FIELD_PREFIXES))
        if len(keys) > 100:
            raise ValueError("at most 100 identifiers per subject")
        return self

    def keys(self) -> list[str]:
        """The subject keys named, deduplicated, in a stable order. Blank values are ignored."""
        found: list[str] = []
        for field, prefix in FIELD_PREFIXES.items():
            value = getattr(self, field)
            values = [value] if isinstance(value, str) else (value or [])
            for item in values:
                text = item.strip()
                if len(text) > _MAX_VALUE:
                    raise ValueError(f"{field} values are at most {_MAX_VALUE} characters")
                if text and f"{prefix}:{text}" not in found:
                    found.append(f"{prefix}:{text}")
        return found


class RectifyFields(BaseModel):
    """Corrected profile fields: property name -> new value (scalars or lists of scalars)."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, str | int | float | bool | list[str]] = Field(min_length=1, max_length=256)

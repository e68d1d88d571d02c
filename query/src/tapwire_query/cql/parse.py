"""Request body -> AST, with validation failures turned into one ``CqlError`` naming each bad field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tapwire_query.cql.ast import CqlQuery
from tapwire_query.cql.errors import CqlError

M = TypeVar("M", bound=BaseModel)


def describe(exc: ValidationError) -> str:
    """``field.path: reason; ...`` for every error (at most five), the way the HTTP layer words 422s."""
    parts = []
    for err in exc.errors()[:5]:
        location = ".".join(_without_union_tags(err.get("loc", ())))
        parts.append(f"{location or 'query'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _without_union_tags(loc: tuple[int | str, ...]) -> list[str]:
    # A condition's location repeats its kind (union tag, then the field of the same name): say it once.
    parts: list[str] = []
    for part in map(str, loc):
        if not parts or parts[-1] != part:
            parts.append(part)
    return parts


def parse_as(model: type[M], body: Any) -> M:
    """``body`` validated as ``model``; raises ``CqlError`` when it is not a valid query."""
    if not isinstance(body, dict):
        raise CqlError("query: must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise CqlError(describe(exc)) from exc


def parse_query(body: Any) -> CqlQuery:
    return parse_as(CqlQuery, body)

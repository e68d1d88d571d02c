"""Request body -> AST, with validation failures turned into one ``CqlError`` naming each bad field.

A body nesting deeper than ``MAX_NESTING`` levels of JSON objects and arrays is refused before validation
(which would otherwise recurse through it). Conditions inside it nest at most as deep as the validator's own
recursion limit (about 250 levels), past which the query is refused with a message saying so.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from tapwire_query.cql.ast import CqlQuery
from tapwire_query.cql.errors import CqlError

M = TypeVar("M", bound=BaseModel)

# Levels of JSON objects and arrays: a condition inside ``all``/``any`` takes two, inside ``not`` one.
MAX_NESTING: Final = 300


def describe(exc: ValidationError) -> str:
    """``field.path: reason; ...`` for every error (at most five), the way the HTTP layer words 422s."""
    errors = exc.errors()
    if any(err.get("type") in ("recursion_depth_exceeded", "recursion_loop") for err in errors):
        return "conditions: nested too deeply"
    parts = []
    for err in errors[:5]:
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
    if _deeper_than(body, MAX_NESTING):
        raise CqlError(f"query: nested more than {MAX_NESTING} levels deep")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise CqlError(describe(exc)) from exc


def parse_query(body: Any) -> CqlQuery:
    return parse_as(CqlQuery, body)


def _deeper_than(body: Any, limit: int) -> bool:
    """Whether ``body`` nests objects and arrays more than ``limit`` deep (a loop, not recursion)."""
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False

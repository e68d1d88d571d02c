"""Request body -> AST, with validation failures turned into one ``CqlError`` naming each bad field.

Before validation, one loop over the body refuses more than ``MAX_NESTING`` levels of JSON objects and arrays
and more than ``MAX_OBJECTS`` objects (conditions, filters, …). The compiled statement grows with every
condition, so the object bound caps the work and the SQL of one query whatever the body's byte size allows.
The depth bound stays under what the libraries a query passes through can take: pydantic validates at most
254 nested conditions, and orjson writes at most 255 levels (a query travels inside export cursors).
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from tapwire_query.cql.ast import CqlQuery
from tapwire_query.cql.errors import CqlError

M = TypeVar("M", bound=BaseModel)

# Levels of JSON objects and arrays: a condition inside ``all``/``any`` takes two, inside ``not`` one.
MAX_NESTING: Final = 250
# Every condition and filter is an object; 1,000 compile to at most about 600 KB of SQL in some 20 ms.
MAX_OBJECTS: Final = 1000


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
    _check_shape(body)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise CqlError(describe(exc)) from exc


def parse_query(body: Any) -> CqlQuery:
    return parse_as(CqlQuery, body)


def _check_shape(body: dict[str, Any]) -> None:
    """Raise ``CqlError`` when ``body`` nests more than ``MAX_NESTING`` deep or holds more than ``MAX_OBJECTS``
    objects (a loop, not recursion; it stops at the first excess)."""
    pending: list[tuple[Any, int]] = [(body, 1)]
    objects = 0
    while pending:
        value, depth = pending.pop()
        if depth > MAX_NESTING:
            raise CqlError(f"query: nested more than {MAX_NESTING} levels deep")
        if isinstance(value, dict):
            objects += 1
            if objects > MAX_OBJECTS:
                raise CqlError(f"query: more than {MAX_OBJECTS} objects (conditions, filters and the like)")
            children: Any = value.values()
        else:
            children = value
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))

"""Trigger property filters evaluated on one event's properties, in memory, as the query compiler means them.

A filter here holds for exactly the events the same filter selects in a segment (see
``tapwire_query.cql.predicates``): values are typed, so ``equals "5"`` does not match the number 5; the strings
``"True"``/``"False"`` match booleans; ``contains`` looks into strings only; numeric operators compare numbers
only; ``not_equals`` and ``does_not_contain`` need the property to exist. A name ``Items.<key>`` also looks
into the event's ``Items`` line items (any item matching is enough) unless a property of that very name exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from tapwire_query.cql.ast import PropertyFilter

ITEMS_PREFIX: Final = "Items."
_MISSING: Final = object()


def matches_all(filters: Sequence[PropertyFilter], properties: Mapping[str, Any]) -> bool:
    """Whether every filter holds on ``properties`` (no filters: always)."""
    return all(matches(flt, properties) for flt in filters)


def matches(flt: PropertyFilter, properties: Mapping[str, Any]) -> bool:
    name = flt.name
    value = properties.get(name, _MISSING)
    if value is _MISSING and name.startswith(ITEMS_PREFIX) and len(name) > len(ITEMS_PREFIX):
        items = properties.get("Items")
        if isinstance(items, list):
            key = name[len(ITEMS_PREFIX) :]
            return any(isinstance(item, dict) and _holds(flt, item.get(key, _MISSING)) for item in items)
    return _holds(flt, value)


def _holds(flt: PropertyFilter, value: Any) -> bool:
    op = flt.operator
    exists = value is not _MISSING
    if op == "exists":
        return exists
    if op == "does_not_exist":
        return not exists
    if op in ("equals", "not_equals"):
        found = exists and any(_equal(value, wanted) for wanted in flt.values)
        return found if op == "equals" else exists and not found
    if op in ("contains", "does_not_contain"):
        found = isinstance(value, str) and any(str(wanted) in value for wanted in flt.values)
        return found if op == "contains" else exists and not found
    if not _is_number(value):
        return False
    return any(_compare(op, float(value), float(wanted)) for wanted in flt.values)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(value: Any, wanted: str | float) -> bool:
    if isinstance(wanted, float):
        return _is_number(value) and float(value) == wanted
    if isinstance(value, bool):
        return wanted == ("True" if value else "False")
    return isinstance(value, str) and value == wanted


def _compare(op: str, left: float, right: float) -> bool:
    if op == "greater_than":
        return left > right
    if op == "greater_than_equals":
        return left >= right
    if op == "less_than":
        return left < right
    return left <= right

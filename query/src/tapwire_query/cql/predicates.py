"""Property filters -> SQL predicates over JSON documents (event properties, session context, profile values).

Property names are bound parameters (JSON keys), never identifiers, so any name is safe. Semantics, which
``docs/query.md`` states and the ground-truth tests mirror:

- string values compare with string properties (``equals "True"``/``"False"`` also matches booleans);
  numeric values compare with numeric properties (as Float64); ``contains`` looks inside strings only;
- ``equals`` / ``contains`` / numeric comparisons hold when any listed value matches;
- ``not_equals`` / ``does_not_contain`` hold when the property exists and no listed value matches;
- ``exists`` means present and not JSON null; ``does_not_exist`` is its negation;
- on events, a name ``Items.<key>`` tests ``<key>`` of each object in the ``Items`` list (Charged line
  items): the filter holds when it holds for any item; an event with a top-level property literally named
  ``Items.<key>`` is tested on that property instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tapwire_core.warehouse import schema
from tapwire_query.cql.ast import PropertyFilter
from tapwire_query.cql.errors import CqlError
from tapwire_query.cql.field_path import FieldPath
from tapwire_query.cql.sql import Binder

ITEMS_PREFIX: Final = "Items."
_NUMERIC_TYPES: Final = "('Int64', 'UInt64', 'Double')"
_COMPARATORS: Final = {
    "greater_than": ">",
    "greater_than_equals": ">=",
    "less_than": "<",
    "less_than_equals": "<=",
    "equals": "=",
}

# Session property names that live at a fixed path of the event's context document.
SESSION_PATHS: Final[dict[str, tuple[str, ...]]] = {
    "utm_source": ("campaign", "source"),
    "utm_medium": ("campaign", "medium"),
    "utm_campaign": ("campaign", "name"),
}


class JsonValue:
    """Typed views of one value inside a JSON document: ``doc`` at the bound key path ``keys``.

    ``maps`` names the row's typed property maps (``prop_strings``, ``prop_numbers``) when the value is a
    top-level event property: lookups in them replace JSON parsing for the common operators.
    """

    def __init__(self, doc: str, keys: Sequence[str], *, maps: tuple[str, str] | None = None) -> None:
        self._args = ", ".join([doc, *keys])
        self.maps = maps if len(keys) == 1 else None
        self.key = keys[0] if keys else ""

    @property
    def json_type(self) -> str:
        return f"JSONType({self._args})"

    @property
    def exists(self) -> str:
        return f"{self.json_type} != 'Null'"

    @property
    def args(self) -> str:
        return self._args

    @property
    def string(self) -> str:
        """String: the value as text (strings as they are; other types as JSON text, missing as '')."""
        return f"JSONExtractString({self._args})"

    @property
    def number(self) -> str:
        """Nullable(Float64): the number, NULL for non-numbers."""
        return f"if({self.json_type} IN {_NUMERIC_TYPES}, JSONExtractFloat({self._args}), NULL)"

    @property
    def float(self) -> str:
        """Float64 without a type check: the number, numeric strings parsed, 0 for anything else."""
        return f"JSONExtractFloat({self._args})"

    @property
    def display(self) -> str:
        """String for grouping: strings as they are, booleans as True/False, numbers as JSON text."""
        return (
            f"multiIf({self.json_type} = 'String', JSONExtractString({self._args}), "
            f"{self.json_type} = 'Bool', if(JSONExtractBool({self._args}), 'True', 'False'), "
            f"{self.json_type} = 'Null', '', JSONExtractRaw({self._args}))"
        )


def value_predicate(binder: Binder, value: JsonValue, flt: PropertyFilter) -> str:
    """The filter's condition on ``value``; never NULL (so it can be negated)."""
    if value.maps is not None:
        return _map_predicate(binder, value, value.maps, flt)
    return _json_predicate(binder, value, flt)


def _json_predicate(binder: Binder, value: JsonValue, flt: PropertyFilter) -> str:
    """Each typed test is written "cheap extraction first, type check second": ``JSONExtractString`` /
    ``JSONExtractFloat`` never miss a value of the right type, so the ``JSONType`` check, which only removes
    false positives (numbers as text, numeric strings), runs on the rows that passed the first test."""
    op = flt.operator
    if op == "exists":
        return f"({value.exists})"
    if op == "does_not_exist":
        return f"NOT ({value.exists})"
    if op in ("equals", "not_equals"):
        matched = _equals(binder, value, flt.values)
        return matched if op == "equals" else f"(({value.exists}) AND NOT {matched})"
    if op in ("contains", "does_not_contain"):
        found = " OR ".join(f"position({value.string}, {binder.string(str(v))}) > 0" for v in flt.values)
        matched = f"(({found}) AND {value.json_type} = 'String')"
        return matched if op == "contains" else f"(({value.exists}) AND NOT {matched})"
    symbol = _COMPARATORS[op]
    compared = " OR ".join(f"{value.float} {symbol} {binder.number(float(v))}" for v in flt.values)
    return f"(({compared}) AND {value.json_type} IN {_NUMERIC_TYPES})"


def _map_predicate(binder: Binder, value: JsonValue, maps: tuple[str, str], flt: PropertyFilter) -> str:
    """The same semantics over the typed maps: strings (and booleans as True/False) in the first, numbers
    in the second; JSON is parsed only to tell arrays/objects exist and strings from booleans for contains."""
    strings, numbers = maps
    key = value.key
    in_strings, in_numbers = f"mapContains({strings}, {key})", f"mapContains({numbers}, {key})"
    exists = f"({in_strings} OR {in_numbers} OR {value.exists})"
    op = flt.operator
    if op == "exists":
        return exists
    if op == "does_not_exist":
        return f"NOT {exists}"
    if op in ("equals", "not_equals"):
        parts = []
        texts = [v for v in flt.values if isinstance(v, str)]
        values = [v for v in flt.values if isinstance(v, float)]
        # A missing key reads as '' / 0, so the presence check is needed only when that could match.
        if texts:
            listed = ", ".join(binder.string(v) for v in texts)
            present = f" AND {in_strings}" if "" in texts else ""
            parts.append(f"({strings}[{key}] IN ({listed}){present})")
        if values:
            listed = ", ".join(binder.number(v) for v in values)
            present = f" AND {in_numbers}" if 0.0 in values else ""
            parts.append(f"({numbers}[{key}] IN ({listed}){present})")
        matched = f"({' OR '.join(parts)})"
        return matched if op == "equals" else f"({exists} AND NOT {matched})"
    if op in ("contains", "does_not_contain"):
        found = " OR ".join(f"position({strings}[{key}], {binder.string(str(v))}) > 0" for v in flt.values)
        matched = f"(({found}) AND {in_strings} AND {value.json_type} = 'String')"
        return matched if op == "contains" else f"({exists} AND NOT {matched})"
    symbol = _COMPARATORS[op]
    compared = " OR ".join(f"{numbers}[{key}] {symbol} {binder.number(float(v))}" for v in flt.values)
    zero_matches = any(_holds(op, 0.0, float(v)) for v in flt.values)
    return f"(({compared}) AND {in_numbers})" if zero_matches else f"({compared})"


def _holds(op: str, left: float, right: float) -> bool:
    return {
        "greater_than": left > right,
        "greater_than_equals": left >= right,
        "less_than": left < right,
        "less_than_equals": left <= right,
    }[op]


def _equals(binder: Binder, value: JsonValue, values: Sequence[str | float]) -> str:
    parts = []
    texts = [v for v in values if isinstance(v, str)]
    booleans = [v for v in texts if v in ("True", "False")]
    numbers = [v for v in values if isinstance(v, float)]
    if texts:
        listed = ", ".join(binder.string(v) for v in texts)
        parts.append(f"({value.string} IN ({listed}) AND {value.json_type} = 'String')")
    if booleans:
        listed = ", ".join(binder.string(v) for v in booleans)
        parts.append(
            f"({value.json_type} = 'Bool' AND if(JSONExtractBool({value.args}), 'True', 'False') IN ({listed}))"
        )
    if numbers:
        listed = ", ".join(binder.number(v) for v in numbers)
        parts.append(f"({value.float} IN ({listed}) AND {value.json_type} IN {_NUMERIC_TYPES})")
    return f"({' OR '.join(parts)})"


EVENT_MAPS: Final = (schema.EVENT_PROPERTY_STRINGS, schema.EVENT_PROPERTY_NUMBERS)


def event_property(
    binder: Binder, flt: PropertyFilter, doc: str = "properties", maps: tuple[str, str] | None = EVENT_MAPS
) -> str:
    """Condition of an event property filter on the events row's ``properties`` document (and its maps)."""
    name = binder.string(flt.name)
    top_level = value_predicate(binder, JsonValue(doc, [name], maps=maps), flt)
    if flt.name.startswith(ITEMS_PREFIX) and len(flt.name) > len(ITEMS_PREFIX):
        key = binder.string(flt.name[len(ITEMS_PREFIX) :])
        inner = value_predicate(binder, JsonValue("_item", [key]), flt)
        items = f"arrayExists(_item -> {inner}, JSONExtractArrayRaw({doc}, 'Items'))"
        # A property literally named "Items.<key>" takes precedence over the line items.
        return f"if(JSONHas({doc}, {name}), {top_level}, {items})"
    return top_level


def session_property(binder: Binder, flt: PropertyFilter, where: FieldPath) -> str:
    """Condition of a session property filter: ``time_of_day`` on the event time, others on ``context``."""
    if flt.name == "time_of_day":
        return _time_of_day(binder, flt, where)
    path = SESSION_PATHS.get(flt.name, (flt.name,))
    return value_predicate(binder, JsonValue("context", [binder.string(key) for key in path]), flt)


def _time_of_day(binder: Binder, flt: PropertyFilter, where: FieldPath) -> str:
    if flt.operator != "equals" or len(flt.values) != 2:
        raise CqlError(f'{where}.value: time_of_day takes a ["HH:MM", "HH:MM"] range')
    first, last = (_minute_of_day(v, where) for v in flt.values)
    minute = "(toHour(ts) * 60 + toMinute(ts))"
    return f"{minute} BETWEEN {binder.bind(first, 'Int64')} AND {binder.bind(last, 'Int64')}"


def _minute_of_day(value: str | float, where: FieldPath) -> int:
    text = str(value)
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise CqlError(f"{where}.value: {text!r} is not a time as HH:MM")
    result = int(hours) * 60 + int(minutes)
    if int(hours) > 23 or int(minutes) > 59:
        raise CqlError(f"{where}.value: {text!r} is not a time of day")
    return result

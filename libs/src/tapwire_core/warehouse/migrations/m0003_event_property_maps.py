"""Typed property maps on events, so query filters look a key up instead of parsing the JSON properties.

``prop_strings`` holds every string property (and every boolean, as ``"True"``/``"False"``), ``prop_numbers``
every numeric one. Both are MATERIALIZED: computed on insert from ``properties``, never written by the loader.
Parts written before this migration compute them when read (correct, just slower) until they merge or until
``ALTER TABLE events MATERIALIZE COLUMN prop_strings`` (and ``prop_numbers``) is run; that rewrite is left to
the operator, which keeps this migration non-blocking.
"""

from __future__ import annotations

from tapwire_core.warehouse import schema
from tapwire_core.warehouse.migrations.operations import AddColumn, DropColumn, Migration

_PAIRS = "JSONExtractKeysAndValuesRaw(properties)"
_STRINGS = f"arrayFilter(x -> JSONType(x.2) IN ('String', 'Bool'), {_PAIRS})"
_NUMBERS = f"arrayFilter(x -> JSONType(x.2) IN ('Int64', 'UInt64', 'Double'), {_PAIRS})"
_STRING_VALUE = (
    "if(JSONType(x.2) = 'Bool', if(JSONExtractBool(x.2), 'True', 'False'), JSONExtractString(x.2))"
)
# Migration 4 replaces these expressions and restores them when rolled back.
STRINGS_KIND = (
    "Map(String, String) MATERIALIZED "
    f"mapFromArrays(arrayMap(x -> x.1, {_STRINGS}), arrayMap(x -> {_STRING_VALUE}, {_STRINGS}))"
)
NUMBERS_KIND = (
    "Map(String, Float64) MATERIALIZED "
    f"mapFromArrays(arrayMap(x -> x.1, {_NUMBERS}), arrayMap(x -> JSONExtractFloat(x.2), {_NUMBERS}))"
)

MIGRATION = Migration(
    version=3,
    name="event_property_maps",
    blocking=False,
    forward=(
        AddColumn(table=schema.EVENTS, column=schema.EVENT_PROPERTY_STRINGS, kind=STRINGS_KIND),
        AddColumn(table=schema.EVENTS, column=schema.EVENT_PROPERTY_NUMBERS, kind=NUMBERS_KIND),
    ),
    backward=(
        DropColumn(schema.EVENTS, schema.EVENT_PROPERTY_NUMBERS),
        DropColumn(schema.EVENTS, schema.EVENT_PROPERTY_STRINGS),
    ),
)

"""The typed property maps (migration 3) computed in one pass over each property's raw JSON.

Migration 3's expressions asked ``JSONType`` about every property once per map and again per string value, which
halved the insert rate of ``events``. Here the type comes from the first byte of the property's raw JSON text
(as ``JSONExtractKeysAndValuesRaw`` writes it): ``"`` a string, ``t`` / ``f`` a boolean, ``-`` or a digit a
number; ``n``, ``{`` and ``[`` (null, object, array) land in neither map. Strings are unescaped with
``JSONExtractString``; numbers are read with ``toFloat64``, plus 0 so that ``-0`` is stored as 0 as before.

The meaning is migration 3's, with one correction: a whole number written as a float of magnitude between
2^63 and 10^21 (``1e20``) is a number now; migration 3's re-parse took its digits for an oversized integer and
stored it as a string. Integers outside the 64-bit range are still strings of their digits, in both.

Changing a MATERIALIZED expression is metadata only: rows written before keep the values computed on their
insert, so nothing is rewritten and the migration is not blocking.
"""

from __future__ import annotations

from tapwire_core.warehouse import schema
from tapwire_core.warehouse.migrations import m0003_event_property_maps as m0003
from tapwire_core.warehouse.migrations.operations import Migration, ModifyColumn

_PAIRS = "JSONExtractKeysAndValuesRaw(properties)"
_HEAD = "substring(x.2, 1, 1)"
_STRINGS = f"arrayFilter(x -> {_HEAD} IN ('\"', 't', 'f'), {_PAIRS})"
_NUMBERS = f"arrayFilter(x -> {_HEAD} IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'), {_PAIRS})"
_STRING_VALUE = f"multiIf({_HEAD} = 't', 'True', {_HEAD} = 'f', 'False', JSONExtractString(x.2))"

STRINGS_KIND = (
    "Map(String, String) MATERIALIZED "
    f"mapFromArrays(arrayMap(x -> x.1, {_STRINGS}), arrayMap(x -> {_STRING_VALUE}, {_STRINGS}))"
)
NUMBERS_KIND = (
    "Map(String, Float64) MATERIALIZED "
    f"mapFromArrays(arrayMap(x -> x.1, {_NUMBERS}), arrayMap(x -> toFloat64(x.2) + 0, {_NUMBERS}))"
)

MIGRATION = Migration(
    version=4,
    name="one_pass_property_maps",
    blocking=False,
    forward=(
        ModifyColumn(schema.EVENTS, schema.EVENT_PROPERTY_STRINGS, STRINGS_KIND),
        ModifyColumn(schema.EVENTS, schema.EVENT_PROPERTY_NUMBERS, NUMBERS_KIND),
    ),
    backward=(
        ModifyColumn(schema.EVENTS, schema.EVENT_PROPERTY_NUMBERS, m0003.NUMBERS_KIND),
        ModifyColumn(schema.EVENTS, schema.EVENT_PROPERTY_STRINGS, m0003.STRINGS_KIND),
    ),
)

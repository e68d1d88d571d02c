"""Property: the typed maps ClickHouse computes on insert (``prop_strings``, ``prop_numbers``) hold exactly what
the query compiler relies on, for any JSON object the gateway can put on the bus.

The reference is written out in Python below: strings as they are, booleans as ``"True"``/``"False"``, numbers
as Float64 (``-0.0`` as 0), integers outside the 64-bit range as strings of their digits; null, objects and
arrays in neither map. Rows go through the real ``events`` table (chDB), so the MATERIALIZED column definitions
of the current migrations are what is checked.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import migrate, rollback
from tapwire_ingest.loader.rows import EVENT_COLUMNS

pytestmark = pytest.mark.integration

_INT64_MIN, _UINT64_END = -(2**63), 2**64

keys = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([_INT64_MIN, _INT64_MIN - 1, _UINT64_END - 1, _UINT64_END, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(["true", "false", "null", "1.5", '"', "\\", "{}", "", "True"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(keys, scalars, max_size=3))
documents = st.lists(st.dictionaries(keys, values, max_size=6), min_size=1, max_size=20)


def expected_maps(properties: dict[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    strings: dict[str, str] = {}
    numbers: dict[str, float] = {}
    for key, value in properties.items():
        if isinstance(value, bool):
            strings[key] = "True" if value else "False"
        elif isinstance(value, str):
            strings[key] = value
        elif isinstance(value, int):
            if _INT64_MIN <= value < _UINT64_END:
                numbers[key] = float(value)
            else:
                strings[key] = str(value)
        elif isinstance(value, float):
            numbers[key] = value + 0.0
    return strings, numbers


class _Events:
    """An ``events`` table on its own chDB database, driven from a private event loop (hypothesis examples
    are plain functions)."""

    def __init__(self, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.warehouse = ChdbWarehouse(path, database=f"t_{uuid.uuid4().hex[:12]}")
        self.run(self.warehouse.start())
        self.run(migrate(self.warehouse, cluster=None))

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def maps_of(self, documents: list[bytes]) -> list[tuple[dict[str, str], dict[str, float]]]:
        batch = uuid.uuid4().hex
        rows = [
            (
                "ACC",
                f"{batch}:{i:03d}",
                "i:u",
                "u",
                "",
                "",
                "",
                "",
                "Viewed",
                0,
                0,
                "clevertap",
                text.decode(),
                "",
            )
            for i, text in enumerate(documents)
        ]
        self.run(self.warehouse.insert("events", EVENT_COLUMNS, rows))
        found = self.run(
            self.warehouse.query(
                "SELECT prop_strings, prop_numbers FROM events WHERE startsWith(event_id, {batch:String}) "
                "ORDER BY event_id",
                {"batch": batch},
            )
        )
        return [(dict(row["prop_strings"]), dict(row["prop_numbers"])) for row in found]

    def close(self) -> None:
        self.run(self.warehouse.command(f"DROP DATABASE IF EXISTS {self.warehouse.database}"))
        self.run(self.warehouse.close())
        self.loop.close()


@pytest.fixture(scope="module")
def events(chdb_path: Path) -> Iterator[_Events]:
    table = _Events(chdb_path)
    yield table
    table.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents=documents)
@example(documents=[{"big": 1e20, "neg": -1e19, "edge": 2.0**64, "e": 1e21, "tiny": 5e-324, "zero": -0.0}])
@example(documents=[{"i": 2**63, "j": -(2**63) - 1, "k": 10**20, "s": "x", "b": False, "n": None}])
def test_maps_hold_strings_booleans_and_numbers_by_json_type(
    events: _Events, documents: list[dict[str, Any]]
) -> None:
    # Encoded as the gateway encodes envelope properties.
    encoded = [msgspec.json.encode(properties) for properties in documents]
    # Duplicate keys cannot occur: the gateway's properties are dicts.
    assert events.maps_of(encoded) == [expected_maps(msgspec.json.decode(text)) for text in encoded]


def test_rolling_back_restores_the_previous_expressions_and_their_reading_of_1e20(chdb_path: Path) -> None:
    table = _Events(chdb_path)
    try:
        table.run(rollback(table.warehouse, cluster=None, to_version=3))
        # Migration 3's parse took the digits of 1e20 for an oversized integer; migration 4 corrects that.
        assert table.maps_of([b'{"big":1e20,"s":"x"}']) == [({"big": "100000000000000000000", "s": "x"}, {})]
        table.run(migrate(table.warehouse, cluster=None))
        assert table.maps_of([b'{"big":1e20,"s":"x"}']) == [({"s": "x"}, {"big": 1e20})]
    finally:
        table.close()


def test_rewriting_properties_recomputes_the_maps(events: _Events) -> None:
    """No writer rewrites ``events.properties`` today (rectification corrects profile tables only); one that
    does with ``ALTER TABLE … UPDATE`` keeps the maps right because they are MATERIALIZED, not DEFAULT."""
    batch = uuid.uuid4().hex
    row = (
        "ACC",
        f"{batch}:0",
        "i:u",
        "u",
        "",
        "",
        "",
        "",
        "Viewed",
        0,
        0,
        "clevertap",
        '{"a":1,"b":"x"}',
        "",
    )
    events.run(events.warehouse.insert("events", EVENT_COLUMNS, [row]))
    events.run(
        events.warehouse.command(
            "ALTER TABLE events UPDATE properties = {p:String} WHERE event_id = {id:String} "
            "SETTINGS mutations_sync = 1",
            {"p": '{"a":"now text","c":2}', "id": f"{batch}:0"},
        )
    )
    found = events.run(
        events.warehouse.query(
            "SELECT prop_strings, prop_numbers FROM events WHERE event_id = {id:String}", {"id": f"{batch}:0"}
        )
    )
    assert [(dict(r["prop_strings"]), dict(r["prop_numbers"])) for r in found] == [
        ({"a": "now text"}, {"c": 2.0})
    ]

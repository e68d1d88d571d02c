"""Insert cost of the typed property maps on ``events``: ``python -m tests.bench.event_maps [rows] [rounds]``.

The same rows (generated CleverTap events, built by the loader's ``TableRows``) are inserted into copies of
``events`` that differ only in how ``prop_strings`` / ``prop_numbers`` are filled:

- ``none``: no map columns (the floor);
- ``m0003``: migration 3's MATERIALIZED expressions;
- ``m0004``: migration 4's one-pass MATERIALIZED expressions (what the schema uses);
- ``loader_maps``: the maps computed in Python from the decoded properties and inserted as ordinary columns
  (DEFAULT columns), timed including that Python work, as a loader doing it would pay.

Rounds alternate between the variants; the best round of each is reported, with the process CPU per row (all
threads, chDB's included), which is less disturbed by other jobs on the machine than the wall-clock rate.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from typing import Any

import msgspec

from tapwire_core.envelope import decode_stored, encode
from tapwire_core.warehouse import schema
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import m0003_event_property_maps as m0003
from tapwire_core.warehouse.migrations import m0004_one_pass_property_maps as m0004
from tapwire_ingest.clevertap.upload_records import parse_record
from tapwire_ingest.loader.rows import EVENT_COLUMNS, TableRows
from tapwire_services import generate

_properties = msgspec.json.Decoder(dict[str, Any])
_INT64_MIN, _UINT64_END = -(2**63), 2**64
_PROPERTIES = EVENT_COLUMNS.index("properties")


def loader_maps(text: str) -> tuple[dict[str, str], dict[str, float]]:
    strings: dict[str, str] = {}
    numbers: dict[str, float] = {}
    for key, value in _properties.decode(text).items():
        kind = type(value)
        if kind is str:
            strings[key] = value
        elif kind is float:
            numbers[key] = value + 0.0
        elif kind is bool:
            strings[key] = "True" if value else "False"
        elif kind is int:
            if _INT64_MIN <= value < _UINT64_END:
                numbers[key] = float(value)
            else:
                strings[key] = str(value)
    return strings, numbers


def _kind(materialized: str, default: bool) -> str:
    return materialized.replace(" MATERIALIZED ", " DEFAULT ") if default else materialized


VARIANTS: dict[str, tuple[str, str] | None] = {
    "none": None,
    "m0003": (m0003.STRINGS_KIND, m0003.NUMBERS_KIND),
    "m0004": (m0004.STRINGS_KIND, m0004.NUMBERS_KIND),
    "loader_maps": (_kind(m0003.STRINGS_KIND, True), _kind(m0003.NUMBERS_KIND, True)),
}


def event_rows(count: int) -> list[tuple[Any, ...]]:
    rows = TableRows()
    for position, record in enumerate(generate.events(100_000, count, 7)):
        envelope = parse_record(
            record, account_id="ACC", received_ms=0, request_digest=b"x", position=position
        )
        rows.add(decode_stored(encode(envelope)))
    return list(rows.events)


async def measure(count: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Best rows/s and lowest CPU µs per row of each variant."""
    rows = event_rows(count)
    warehouse = ChdbWarehouse(tempfile.mkdtemp(prefix="event-maps-"))
    await warehouse.start()
    columns = ",\n".join(f"{name} {kind}" for name, kind in schema.EVENT_COLUMNS)
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpus: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        for _ in range(rounds):
            for name, maps in VARIANTS.items():
                table = f"events_{name}"
                extra = "" if maps is None else f",\nprop_strings {maps[0]},\nprop_numbers {maps[1]}"
                await warehouse.command(f"DROP TABLE IF EXISTS {table}")
                await warehouse.command(
                    f"CREATE TABLE {table} ({columns}{extra}) ENGINE = ReplacingMergeTree "
                    "PARTITION BY toYYYYMM(ts) ORDER BY (account_id, name, toDate(ts), user_key, event_id)"
                )
                started, cpu = time.perf_counter(), time.process_time()
                if name == "loader_maps":
                    with_maps = [row + loader_maps(row[_PROPERTIES]) for row in rows]
                    await warehouse.insert(table, (*EVENT_COLUMNS, "prop_strings", "prop_numbers"), with_maps)
                else:
                    await warehouse.insert(table, EVENT_COLUMNS, rows)
                rates[name].append(count / (time.perf_counter() - started))
                cpus[name].append((time.process_time() - cpu) / count * 1e6)
        # The variants must agree (on these rows, which hold no float beyond 2^63).
        for name in ("m0004", "loader_maps"):
            differing = await warehouse.query(
                "SELECT count() AS n FROM events_m0003 AS a FULL JOIN events_"
                + name
                + " AS b USING event_id WHERE a.prop_strings != b.prop_strings OR a.prop_numbers != b.prop_numbers"
            )
            assert differing[0]["n"] == 0, name
    finally:
        await warehouse.close()
    return {name: (max(rates[name]), min(cpus[name])) for name in VARIANTS}


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    load = os.getloadavg()[0]
    results = asyncio.run(measure(count, rounds))
    print(f"{count} rows, best of {rounds}; load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    for name, (rate, cpu) in results.items():
        print(f"  {name:12s} {rate:>10,.0f} rows/s  {cpu:5.2f} µs CPU/row")


if __name__ == "__main__":
    main()

"""What an anonymised aggregate costs on chDB: the suppression statements, and the differencing comparison
against 0, 1, 10 and 50 earlier releases (one statement per batch that fits).

``python -m tests.bench.aggregates [events] [users]`` (default 1,000,000 events over 100,000 users, built into a
temporary chDB each run); prints per figure the median of three runs, and a JSON object as its last line. Run it
under ``flock /tmp/tapwire-heavy.lock``; the figures are only comparable with each other within one run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import orjson

from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_query.aggregates import statements
from tapwire_query.aggregates.request import parse_request
from tapwire_query.aggregates.service import comparison_batches
from tapwire_query.aggregates.statements import Cells, Definition
from tapwire_query.aggregates.suppression import Threshold, ascending, decide
from tapwire_query.cql import CompileOptions
from tapwire_services import generate

ACCOUNT = "AGG-BENCH"
TODAY = dt.date(2026, 1, 31)
SEED = 7


def log(message: str) -> None:
    print(f"[aggregates] {message}", file=sys.stderr, flush=True)


def _definition(body: dict[str, Any]) -> Definition:
    return Definition(parse_request(body), (ACCOUNT,), CompileOptions(today=TODAY))


def _earlier(count: int) -> list[tuple[Definition, Cells]]:
    """``count`` different released aggregates: an event in a window, grouped by country."""
    releases = []
    names = itertools.cycle(generate.EVENT_NAMES)
    for index in range(count):
        body = {
            "event_name": next(names),
            "from": 20260101 + index % 20,
            "to": 20260131,
            "group_by": {"profile_property": "Country"},
        }
        releases.append((_definition(body), Cells(("vIndia", "vGermany", "vPortugal"), True)))
    return releases


async def _median(run: Any) -> float:
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples), 3)


async def bench(events: int, users: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agg-bench-") as path:
        warehouse = ChdbWarehouse(path, database="aggbench")
        await warehouse.start()
        try:
            await migrate(warehouse, cluster=None)
            started = time.perf_counter()
            records = itertools.chain(generate.profiles(users, SEED), generate.events(users, events, SEED))
            await generate.load(
                warehouse, records, account_id=ACCOUNT, received_ms=1_770_000_000_000, batch_rows=200_000
            )
            await warehouse.command("OPTIMIZE TABLE events FINAL")
            log(f"built {events} events for {users} users in {time.perf_counter() - started:.0f}s")
            return await _measure(warehouse)
        finally:
            await warehouse.close()


async def _measure(warehouse: ChdbWarehouse) -> dict[str, Any]:
    new = _definition(
        {"event_name": "Charged", "from": 20260101, "to": 20260131, "group_by": {"profile_property": "City"}}
    )
    threshold = Threshold(10)

    async def suppression() -> Any:
        compiled = statements.candidates(new, threshold)
        groups, kept = statements.read_candidates(await warehouse.query(compiled.sql, compiled.params))
        ranked = ascending(kept)
        histogram = await warehouse.query(*_parts(statements.rank_histogram(new, ranked)))
        return decide(ranked, statements.read_histogram(histogram), groups=groups, threshold=threshold)

    figures: dict[str, Any] = {"load_average_start": round(os.getloadavg()[0], 2)}
    figures["aggregate_suppression_s"] = await _median(suppression)
    decision = await suppression()
    cells = Cells(tuple(g.label for g in decision.groups), decision.other is not None)
    for count in (1, 10, 50):
        earlier = _earlier(count)
        chunks = comparison_batches((new, cells), earlier)

        async def compare(
            earlier: list[tuple[Definition, Cells]] = earlier, chunks: list[list[int]] = chunks
        ) -> None:
            for chunk in chunks:
                compiled = statements.overlaps((new, cells), [earlier[i] for i in chunk])
                await warehouse.query(compiled.sql, compiled.params)

        figures[f"aggregate_compare_{count}_s"] = await _median(compare)
        figures[f"aggregate_compare_{count}_statements"] = len(chunks)
        log(f"{count} earlier: {figures[f'aggregate_compare_{count}_s']}s in {len(chunks)} statement(s)")
    figures["load_average_end"] = round(os.getloadavg()[0], 2)
    return figures


def _parts(compiled: Any) -> tuple[str, dict[str, Any]]:
    return compiled.sql, compiled.params


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    users = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    figures = asyncio.run(bench(events, users))
    print(orjson.dumps({"events": events, "users": users, **figures}).decode())


if __name__ == "__main__":
    main()

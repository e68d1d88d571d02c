"""Queries on a live account: ``python -m tests.bench.query_live [--events N] [--users U] [--rate R]``.

The query benchmark (``tests.bench.query``) times a table optimised to one part per month. A live account's
table is what the loader leaves: an insert every 0.5 s, background merges behind them, identities merged, and
uploads arriving while customers query. This benchmark times the same compiled families on such a table:

- **The dataset**: the query benchmark's 10M events (same generator, seed and event ids), inserted with the
  loader's own statement for event packs (``EVENT_ROWS``, the JSON the events travel the bus in) in batches of
  5,000 events, which is what the loader's 0.5 s batch timer makes of 10,000 events/s, day after day as a live
  account receives them; never optimised. Built
  once into ``~/.cache/tapwire-bench/live-query/<size>-<seed>-<generator and loader fingerprint>/`` and copied
  for each run (the run inserts into its copy). Migrations newer than the cache are applied to the copy.
- **Merged identities**: 5 % of the users (user 20i+1 merged into user 20i, as ``--merged`` does in the query
  benchmark), so every scan maps user keys through the alias map.
- **Uploads during the timing**: ``--rate`` events/s (default 10,000) of new generated events of the month's
  last day ("today", inside the queried month), inserted as the loader would (a batch every 0.5 s holding what arrived since the last one), on the
  same chDB engine as the queries: a query waits behind an insert in flight, as it does in the embedded suite.

Prints per-family p50/p95 and, as its last line, one JSON object: ``query_live_families`` (per family),
``query_live_parts_start`` / ``_end`` (active parts of ``events``), ``query_live_upload_events_per_s`` (the rate
the uploads achieved). Compare with ``tests.bench.query --merged`` on the optimised table (``run_in_subprocess``
runs both and writes the report). Run it in its own process: chDB allows one data directory per process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from tapwire_core.envelope import Envelope, encode
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_ingest.clevertap.upload_records import parse_record
from tapwire_ingest.loader import event_json
from tapwire_ingest.loader.event_json import EVENT_ROWS
from tapwire_services import generate
from tests.bench import query

ACCOUNT = query.ACCOUNT
SEED = query.SEED
BATCH_EVENTS = 5_000
BATCH_SECONDS = 0.5
UPLOAD_RATE = 10_000
# Per family: timing stops after this many seconds once MIN_RUNS runs are in.
BUDGET_S = float(os.environ.get("BENCH_QUERY_LIVE_BUDGET_S", "25"))
RUNS = query.RUNS
MIN_RUNS = query.MIN_RUNS
CACHE = Path(os.environ.get("TAPWIRE_BENCH_CACHE", Path.home() / ".cache" / "tapwire-bench")) / "live-query"
RECEIVED_MS = 1_770_000_000_000
DAYS = 30  # the generator's default: events from 2026-01-01 to 2026-01-30
# Part of the dataset's cache key: bump it when ``build`` changes what it stores.
BUILD_VERSION = b"live-build-2: day by day"


def log(message: str) -> None:
    print(f"[bench:query-live] {message}", file=sys.stderr, flush=True)


def dataset_dir(events: int, users: int) -> Path:
    """Keyed by the generator's and the loader statement's code and ``BUILD_VERSION``: any of them changing
    rebuilds the dataset. Schema migrations do not: they are applied to each run's copy."""
    fingerprint = hashlib.sha256(Path(generate.__file__).read_bytes())
    fingerprint.update(Path(event_json.__file__).read_bytes())
    fingerprint.update(BUILD_VERSION)
    return CACHE / f"e{events}-u{users}-s{SEED}-{fingerprint.hexdigest()[:10]}"


def spill_by_day(records: Iterator[dict[str, Any]], spill: Path) -> list[Path]:
    """The records' envelopes, one JSON line each, in one file per day of their timestamp."""
    paths = [spill / f"day-{day:02d}.jsonl" for day in range(DAYS)]
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(path.open("wb")) for path in paths]
        for position, record in enumerate(records):
            day = (record["ts"] - generate.BASE_TS) // generate.DAY_S
            files[day].write(encode(_envelope(record, position)) + b"\n")
    return paths


async def active_parts(warehouse: ChdbWarehouse) -> int:
    rows = await warehouse.query(
        "SELECT count() AS n FROM system.parts WHERE database = {db:String} AND table = 'events' AND active",
        {"db": warehouse.database},
    )
    return int(rows[0]["n"])


async def build(path: Path, events: int, users: int) -> None:
    """The events as the loader inserts them, 5,000 to an insert, into ``path`` (then marked complete).

    A live account receives its events about when they happen, so each insert holds the events of a short
    time: the generator's events (spread at random over the month) are first sorted into days and inserted day
    by day. It matters to ``FINAL``: parts whose key ranges (account, event, day, …) do not overlap are read
    without merging, so only the parts of the same days are merged on read."""
    warehouse = ChdbWarehouse(path / "chdb", database="live")
    await warehouse.start()
    try:
        await migrate(warehouse, cluster=None)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="tapwire-live-spill-") as spill:
            days = spill_by_day(generate.events(users, events, SEED), Path(spill))
            log(f"  generated in {time.perf_counter() - started:.0f}s")
            number = inserted = 0
            for day in days:
                lines = day.read_bytes().splitlines()
                for first in range(0, len(lines), BATCH_EVENTS):
                    rows = b"[" + b",".join(lines[first : first + BATCH_EVENTS]) + b"]"
                    await warehouse.insert_json(EVENT_ROWS, rows, dedup_token=f"live:{number}")
                    number += 1
                inserted += len(lines)
                log(f"  {day.stem}: {inserted:,} events, {await active_parts(warehouse)} active parts")
        seconds = round(time.perf_counter() - started)
        parts = await active_parts(warehouse)
    finally:
        await warehouse.close()
    (path / "complete.json").write_bytes(orjson.dumps({"events": events, "seconds": seconds, "parts": parts}))
    log(f"  built in {seconds}s, {parts} active parts")


class Uploads:
    """New events at ``rate`` per second, inserted every 0.5 s as one batch of what arrived meanwhile.

    Generating and validating events costs some 30 µs each in this process, which would hold the event loop
    while a query's answer waits for it; so a pool of ``POOL`` generated events (a minute at 10,000/s is not
    needed: ids make them new) is encoded up front and each batch takes the next ones from it, their event ids
    prefixed with the batch number so every upload is a new event."""

    POOL = 50_000

    def __init__(self, warehouse: ChdbWarehouse, users: int, rate: int) -> None:
        self._warehouse = warehouse
        self._rate = rate
        records = generate.events(users, self.POOL, SEED + 1)
        self._pool = [encode(_envelope(_today(record), position)) for position, record in enumerate(records)]
        self.sent = 0
        self.seconds = 0.0

    async def run(self) -> None:
        started = time.monotonic()
        number = 0
        while True:
            await asyncio.sleep(BATCH_SECONDS)
            self.seconds = time.monotonic() - started
            due = min(int(self.seconds * self._rate) - self.sent, self.POOL)
            if due <= 0:
                continue
            first = self.sent % self.POOL
            chosen = (self._pool + self._pool)[first : first + due]
            rows = (b"[" + b",".join(chosen) + b"]").replace(b'"event_id":"', b'"event_id":"u%d-' % number)
            await self._warehouse.insert_json(EVENT_ROWS, rows, dedup_token=f"upload:{number}")
            self.sent += due
            number += 1


def _today(record: dict[str, Any]) -> dict[str, Any]:
    """The record moved to the month's last day (Jan 31, after the dataset's 30 days): uploads on a live account
    happen now, and the queried month ends today."""
    return record | {
        "ts": generate.BASE_TS + DAYS * generate.DAY_S + (record["ts"] - generate.BASE_TS) % generate.DAY_S
    }


def _envelope(record: dict[str, Any], position: int) -> Envelope:
    return parse_record(
        record, account_id=ACCOUNT, received_ms=RECEIVED_MS, request_digest=b"live", position=position
    )


async def time_families(warehouse: ChdbWarehouse) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for family in query.families():
        samples: list[float] = []
        started = time.perf_counter()
        while len(samples) < RUNS and (len(samples) < MIN_RUNS or time.perf_counter() - started < BUDGET_S):
            wall, _ = await query.timed(warehouse, family.compiled.sql, family.compiled.params)
            samples.append(wall)
        p50, p95 = query.percentile(samples, 50), query.percentile(samples, 95)
        results[family.name] = {
            "p50_ms": round(p50, 1),
            "p95_ms": round(p95, 1),
            "median_ms": round(statistics.median(samples), 1),
            "runs": len(samples),
            "count": family.count,
        }
        log(f"{family.name}: p50 {p50:.1f} / p95 {p95:.1f} ms ({len(samples)} runs)")
    return results


async def bench(events: int, users: int, rate: int) -> dict[str, Any]:
    path = dataset_dir(events, users)
    if not (path / "complete.json").exists():
        # In a process of its own: this one opens the copy, and chDB allows one data directory per process.
        size = ["--events", str(events), "--users", str(users)]
        build = [sys.executable, "-m", "tests.bench.query_live", "--build", *size]
        subprocess.run(build, check=True)  # noqa: ASYNC221 - the process does nothing else meanwhile
    with tempfile.TemporaryDirectory(prefix="tapwire-live-query-") as work:
        log(f"copying {path.name}")
        # cp -a keeps the engine's symlinks (data/<db>/<table> → store/…), which copytree would copy as folders.
        copy = ["cp", "-a", "--reflink=auto", str(path / "chdb"), work]
        subprocess.run(copy, check=True)  # noqa: ASYNC221 - untimed set-up
        warehouse = ChdbWarehouse(Path(work) / "chdb", database="live")
        await warehouse.start()
        try:
            await migrate(warehouse, cluster=None)
            await query.merge_identities(warehouse, users // 20, users)
            parts_start = await active_parts(warehouse)
            load_start = os.getloadavg()[0]
            uploads = Uploads(warehouse, users, rate)
            task = asyncio.create_task(uploads.run())
            try:
                families = await time_families(warehouse)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            parts_end = await active_parts(warehouse)
        finally:
            await warehouse.close()
    return {
        "query_live_families": families,
        "query_live_parts_start": parts_start,
        "query_live_parts_end": parts_end,
        "query_live_upload_events_per_s": round(uploads.sent / max(uploads.seconds, 1e-9)),
        "query_live_merged_identities": users // 20,
        "query_live_load_start": round(load_start, 1),
        "query_live_load_end": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.query_live")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument(
        "--rate", type=int, default=UPLOAD_RATE, help="upload events per second during the timing"
    )
    parser.add_argument("--build", action="store_true", help="build the cached dataset only")
    args = parser.parse_args()
    if args.build:
        path = dataset_dir(args.events, args.users)
        log(f"building {args.events:,} events in {BATCH_EVENTS:,}-event inserts (once; cached in {path})")
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        asyncio.run(build(path, args.events, args.users))
        return
    figures = asyncio.run(bench(args.events, args.users, args.rate))
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()

"""Query benchmark: compiled CQL against hand-written ClickHouse SQL for the same questions, on chDB.

``python -m tests.bench.query [--events N] [--users U]`` (defaults: 10M events, 1M users). The dataset comes
from ``tapwire_services.generate`` and is built once into ``~/.cache/tapwire/query-bench/...`` (keyed by size,
seed and schema), then reused. Prints per-family p50/p95 for both forms and, as its last line, one JSON object
with ``query_p50_ms``, ``query_p95_ms`` and ``query_vs_handwritten_ratio`` (the worst family's p50 ratio).
Run it in its own process: chDB allows one data directory per process.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import checksum, migrate, migrations
from tapwire_query.cql import (
    Compiled,
    CompileOptions,
    compile_event_count,
    compile_event_rows,
    compile_user_count,
    parse_query,
)
from tapwire_query.cql.identity import aliases_clause, canonical
from tapwire_services import generate

ACCOUNT = "TAP-QBENCH"
SEED = 11
RUNS = int(os.environ.get("BENCH_QUERY_RUNS", "15"))
# Each family stops timing after this many seconds (at least MIN_RUNS runs each form), so a slow family
# cannot stretch `make bench` on a loaded machine.
BUDGET_S = float(os.environ.get("BENCH_QUERY_BUDGET_S", "30"))
MIN_RUNS = 5
CACHE = Path(os.environ.get("TAPWIRE_CACHE", Path.home() / ".cache" / "tapwire")) / "query-bench"
OPTIONS = CompileOptions(today=dt.date(2026, 2, 1))
JAN = {"from": 20260101, "to": 20260131}
A = "{account:String}"
WITH = f"WITH {aliases_clause(A)} "
EVENTS_IN_JAN = f"account_id = {A} AND toDate(ts) BETWEEN '2026-01-01' AND '2026-01-31'"
UK = canonical()


def log(message: str) -> None:
    print(f"[bench:query] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Family:
    name: str
    compiled: Compiled
    handwritten: str
    count: bool = True


def families() -> list[Family]:
    def users(body: dict[str, Any]) -> Compiled:
        return compile_user_count(parse_query(body), account_id=ACCOUNT, options=OPTIONS)

    charged = {"event_name": "Charged", **JAN}
    page_query = parse_query({"event_name": "App Opened", **JAN})
    return [
        Family(
            "count users who did an event",
            users(charged),
            WITH + f"SELECT uniqExact({UK}) AS n FROM events WHERE {EVENTS_IN_JAN} AND name = 'Charged'",
        ),
        Family(
            "count events with property filters",
            compile_event_count(
                parse_query(
                    {
                        "event_name": "Product Viewed",
                        **JAN,
                        "event_properties": [
                            {"name": "category", "value": "books"},
                            {"name": "price", "operator": "greater_than", "value": 100},
                        ],
                    }
                ),
                account_id=ACCOUNT,
                options=OPTIONS,
            ),
            "SELECT count() AS n FROM events FINAL WHERE "
            f"{EVENTS_IN_JAN} AND name = 'Product Viewed' "
            "AND prop_strings['category'] = 'books' AND prop_numbers['price'] > 100",
        ),
        Family(
            "count users with property filters",
            users(
                {
                    "event_name": "Product Viewed",
                    **JAN,
                    "event_properties": [{"name": "category", "value": "books"}],
                }
            ),
            WITH
            + f"SELECT uniqExact({UK}) AS n FROM events WHERE {EVENTS_IN_JAN} AND name = 'Product Viewed' "
            "AND prop_strings['category'] = 'books'",
        ),
        Family(
            "count users who did it at least 5 times",
            users(
                {
                    "conditions": [
                        {
                            "did": {
                                "event_name": "App Opened",
                                **JAN,
                                "operator": "greater_than_equals",
                                "value": 5,
                            }
                        }
                    ]
                }
            ),
            WITH + "SELECT count() AS n FROM ("
            f"SELECT {UK} AS uk FROM events FINAL WHERE {EVENTS_IN_JAN} AND name = 'App Opened' "
            "GROUP BY uk HAVING count() >= 5)",
        ),
        Family(
            "count users who did one event but not another",
            users({"event_name": "App Opened", **JAN, "conditions": [{"did_not": charged}]}),
            WITH + "SELECT countIf(opened AND NOT bought) AS n FROM ("
            f"SELECT {UK} AS uk, countIf(name = 'App Opened') > 0 AS opened, countIf(name = 'Charged') > 0 AS bought "
            f"FROM events WHERE {EVENTS_IN_JAN} AND name IN ('App Opened', 'Charged') GROUP BY uk)",
        ),
        Family(
            "count users through a 3-step funnel",
            users(
                {
                    "conditions": [
                        {
                            "funnel": {
                                "steps": [
                                    {"event_name": "Product Viewed"},
                                    {"event_name": "Added To Cart"},
                                    {"event_name": "Charged"},
                                ],
                                "within_seconds": 86_400,
                                **JAN,
                            }
                        }
                    ]
                }
            ),
            WITH + "SELECT countIf(level = 3) AS n FROM ("
            f"SELECT {UK} AS uk, windowFunnel(86400000, 'strict_increase')("
            # Milliseconds since the window's start fit in 32 bits: half the per-user state of UInt64.
            "toUInt32(toUnixTimestamp64Milli(ts) - 1767225600000), "
            "name = 'Product Viewed', name = 'Added To Cart', name = 'Charged') AS level "
            # No FINAL: a redelivered copy has its original's time, so it cannot complete or break a chain.
            f"FROM events WHERE {EVENTS_IN_JAN} AND name IN ('Product Viewed', 'Added To Cart', 'Charged') "
            "GROUP BY uk)",
        ),
        Family(
            "cursor page of 5000 events",
            compile_event_rows(
                page_query, account_id=ACCOUNT, options=OPTIONS, after=(1_767_830_400_000, ""), limit=5000
            ),
            WITH
            + f"SELECT event_id, name, toUnixTimestamp64Milli(ts) AS ts_ms, {UK} AS uk, identity, object_id, "
            "email, phone, properties, context FROM events FINAL "
            f"WHERE {EVENTS_IN_JAN} AND name = 'App Opened' "
            "AND ts >= fromUnixTimestamp64Milli(1767830400000, 'UTC') AND (ts_ms, event_id) > (1767830400000, '') "
            "ORDER BY ts_ms, event_id LIMIT 5000",
            count=False,
        ),
    ]


def dataset_dir(events: int, users: int) -> Path:
    # Keyed by the schema and the generator's code: either changing rebuilds the dataset.
    fingerprint = hashlib.sha256("".join(checksum(m) for m in migrations()).encode())
    fingerprint.update(Path(generate.__file__).read_bytes())
    return CACHE / f"e{events}-u{users}-s{SEED}-{fingerprint.hexdigest()[:10]}"


async def ensure_dataset(
    warehouse: ChdbWarehouse, events: int, users: int, marker: Path, *, cached: bool
) -> dict[str, Any]:
    """The dataset's build record, building it first unless ``cached``."""
    await migrate(warehouse, cluster=None)
    if cached:
        log(f"reusing the cached dataset in {marker.parent}")
        built: dict[str, Any] = orjson.loads(marker.read_bytes())  # noqa: ASYNC240 - a few bytes, once
        return built
    log(f"building {events} events for {users} users (once; cached in {marker.parent})")
    started = time.perf_counter()
    await warehouse.command("TRUNCATE TABLE IF EXISTS events")
    records = itertools.chain(generate.profiles(users, SEED), generate.events(users, events, SEED))
    loaded = await generate.load(
        warehouse, records, account_id=ACCOUNT, received_ms=1_770_000_000_000, batch_rows=200_000
    )
    await warehouse.command("OPTIMIZE TABLE events FINAL")
    built = {"records": loaded, "seconds": round(time.perf_counter() - started)}
    marker.write_bytes(orjson.dumps(built))  # noqa: ASYNC240 - a few bytes, once
    log(f"  built in {built['seconds']}s")
    return built


async def timed(warehouse: ChdbWarehouse, sql: str, params: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    rows = await warehouse.query(sql, params)
    return (time.perf_counter() - started) * 1000, rows


async def cpu_timed(warehouse: ChdbWarehouse, sql: str, params: dict[str, Any]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run. The process does nothing else meanwhile, so its CPU time is the
    query's (all of chDB's threads): a figure that moves less than wall time when other jobs share the cores."""
    cpu = time.process_time()
    wall, _ = await timed(warehouse, sql, params)
    return wall, (time.process_time() - cpu) * 1000


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def merge_identities(warehouse: ChdbWarehouse, merged: int, users: int) -> None:
    """Link user 20i+1 into user 20i for the first ``merged`` values of i (active alias rows, as the identity
    graph projects them), so every scan maps keys through a non-empty alias map. Undone by ``unmerge``."""
    if merged * 20 > users:
        raise SystemExit(f"--merged {merged}: at most {users // 20} for {users} users")
    log(f"merging {merged} identities for this run")
    key = "concat('i:', 'user-', leftPad(toString({n}), 7, '0'))"
    await warehouse.command(
        "INSERT INTO user_aliases (account_id, alias_key, canonical_key, merged_at, version, active) "
        f"SELECT {{account:String}}, {key.format(n='number * 20 + 1')}, {key.format(n='number * 20')}, "
        f"now64(3), 1, 1 FROM numbers({{merged:UInt64}})",
        {"account": ACCOUNT, "merged": merged},
    )


async def unmerge(warehouse: ChdbWarehouse) -> None:
    # The generated dataset has no aliases of its own, so emptying the table restores it.
    await warehouse.command("TRUNCATE TABLE user_aliases")


async def bench(events: int, users: int, merged: int = 0) -> dict[str, Any]:
    path = dataset_dir(events, users)
    path.mkdir(parents=True, exist_ok=True)
    warehouse = ChdbWarehouse(path / "chdb", database="qbench")
    await warehouse.start()
    try:
        marker = path / "complete.json"
        built = await ensure_dataset(warehouse, events, users, marker, cached=marker.exists())
        if merged:
            await merge_identities(warehouse, merged, users)
        results: dict[str, Any] = {}
        load_start = os.getloadavg()[0]
        compiled_all: list[float] = []
        ratios: list[float] = []
        fams = families()
        for family in fams:
            hand = {"account": ACCOUNT}
            _, expected = await timed(warehouse, family.handwritten, hand)
            _, got = await timed(warehouse, family.compiled.sql, family.compiled.params)
            if family.count:
                assert int(got[0]["n"]) == int(expected[0]["n"]), (family.name, got, expected)
            else:
                assert [r["event_id"] for r in got] == [r["event_id"] for r in expected], family.name
            mine: list[float] = []
            theirs: list[float] = []
            mine_cpu: list[float] = []
            started = time.perf_counter()
            while len(mine) < RUNS and (len(mine) < MIN_RUNS or time.perf_counter() - started < BUDGET_S):
                wall, cpu = await cpu_timed(warehouse, family.compiled.sql, family.compiled.params)
                mine.append(wall)
                mine_cpu.append(cpu)
                theirs.append((await timed(warehouse, family.handwritten, hand))[0])
            p50, p95 = percentile(mine, 50), percentile(mine, 95)
            h50, h95 = percentile(theirs, 50), percentile(theirs, 95)
            ratio = statistics.median(mine) / statistics.median(theirs)
            compiled_all.extend(mine)
            ratios.append(ratio)
            result = got[0]["n"] if family.count else len(got)
            results[family.name] = {
                "p50_ms": round(p50, 1),
                "p95_ms": round(p95, 1),
                "cpu_p50_ms": round(statistics.median(mine_cpu), 1),
                "handwritten_p50_ms": round(h50, 1),
                "handwritten_p95_ms": round(h95, 1),
                "ratio": round(ratio, 2),
                "runs": len(mine),
                "result": int(result),
            }
            log(
                f"{family.name}: p50 {p50:.1f} / p95 {p95:.1f} ms; hand-written {h50:.1f} / {h95:.1f} ms; x{ratio:.2f}"
            )
        return {
            "query_p50_ms": round(percentile(compiled_all, 50), 1),
            "query_p95_ms": round(percentile(compiled_all, 95), 1),
            "query_vs_handwritten_ratio": round(max(ratios), 2),
            "query_count_p95_max_ms": max(
                r["p95_ms"] for f, r in zip(fams, results.values(), strict=True) if f.count
            ),
            "query_events": events,
            "query_users": users,
            "query_dataset_build_s": built["seconds"],
            "query_load_start": round(load_start, 1),
            "query_load_end": round(os.getloadavg()[0], 1),
            "query_families": results,
        }
    finally:
        if merged:
            await unmerge(warehouse)
        await warehouse.close()


P95_TARGET_MS = 500
RATIO_TARGET = 1.5
REPORT = Path("docs/benchmarks.md")
MARKERS = ("<!-- bench:query -->", "<!-- /bench:query -->")


def write_report(figures: dict[str, Any]) -> None:
    """Replace the query section of docs/benchmarks.md with this run's figures."""
    lines = [
        f"Latest query benchmark: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{figures['query_events']:,} events, {figures['query_users']:,} users, chDB, up to {RUNS} runs per query "
        f"({BUDGET_S:.0f} s per family), "
        f"load average {figures['query_load_start']} at the start and {figures['query_load_end']} at the end "
        f"on {os.cpu_count()} cores.",
        "",
        "| family | compiled p50 ms | compiled p95 ms | compiled CPU p50 ms | hand-written p50 ms "
        "| hand-written p95 ms | ratio (p50) | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, family in figures["query_families"].items():
        p95 = family["p95_ms"]
        flag = "" if p95 < P95_TARGET_MS else " **over 500**"
        ratio = family["ratio"]
        lines.append(
            f"| {name} | {family['p50_ms']} | {p95}{flag} | {family['cpu_p50_ms']} | {family['handwritten_p50_ms']} | "
            f"{family['handwritten_p95_ms']} | {ratio}{'' if ratio <= RATIO_TARGET else ' **over 1.5**'} | "
            f"{family['runs']} |"
        )
    lines += [
        "",
        f"`query_p50_ms` {figures['query_p50_ms']}, `query_p95_ms` {figures['query_p95_ms']} (all families' "
        f"samples), `query_count_p95_max_ms` {figures['query_count_p95_max_ms']} (slowest count family; target "
        f"< {P95_TARGET_MS}), `query_vs_handwritten_ratio` {figures['query_vs_handwritten_ratio']} (worst family; "
        f"target ≤ {RATIO_TARGET}).",
    ]
    start, end = MARKERS
    block = f"{start}\n" + "\n".join(lines) + f"\n{end}"
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    if start in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n## Queries\n\n" + block + "\n"
    REPORT.write_text(text)


def run_in_subprocess() -> dict[str, Any]:
    """The benchmark in its own process (its own chDB engine); for ``make bench``. Size from
    ``BENCH_QUERY_EVENTS`` / ``BENCH_QUERY_USERS`` (default 10M / 1M)."""
    import subprocess

    events = os.environ.get("BENCH_QUERY_EVENTS", "10000000")
    users = os.environ.get("BENCH_QUERY_USERS", str(max(1, int(events) // 10)))
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.query", "--events", events, "--users", users],
        check=True,
        stdout=subprocess.PIPE,
        # Building the 10M dataset takes about 8 minutes here (once); timing it about 2 more.
        timeout=3600,
    )
    figures: dict[str, Any] = orjson.loads(done.stdout.decode().strip().splitlines()[-1])
    return {key: value for key, value in figures.items() if key != "query_families"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.query")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument(
        "--merged",
        type=int,
        default=0,
        help="merge this many identities for the run (measures the alias mapping; not written to the report)",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="print the figures only (other benchmarks compare them)"
    )
    args = parser.parse_args()
    figures = asyncio.run(bench(args.events, args.users, args.merged))
    if args.merged:
        figures["query_merged_identities"] = args.merged
    elif not args.no_report:
        write_report(figures)
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()

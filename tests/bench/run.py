"""``make bench``: ingestion benchmarks on this machine, side by side with Kafka's own producer tool.

Writes docs/benchmarks.md and prints one JSON object as the last line. Every figure comes from this run.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

from tapwire_core.settings import Settings
from tests.bench import query_compare, summary
from tests.bench.cql_compile import run_in_subprocess as run_cql_compile_benchmark
from tests.bench.gateways import gateway_processes, gateway_processes_wanted
from tests.bench.loader import measure_in_process
from tests.bench.loadgen import LoadResult, drive, segment_bodies, upload_bodies
from tests.bench.query import run_in_subprocess as run_query_benchmark
from tests.bench.raw_insert import measure_in_process as measure_raw_insert
from tests.bench.segment_batch import bench_segment_gateway
from tests.bench.segment_batch import figures as segment_figures
from tests.credentials import CREDENTIAL_SECRET
from tests.infra.kafka_broker import KafkaBroker, kafka_home
from tests.infra.producer_perf import run_producer_perf
from tests.integration.processes import TapwireProcess

ACCOUNT, PASSCODE = "TAP-BENCH-0001", "passcode-bench-0123456789abcdef"
ACCOUNTS = f"{ACCOUNT}:{PASSCODE}:writekey-bench-0123456789abcdef"
RECORDS_PER_BODY = 100
DURATION_S = float(os.environ.get("BENCH_DURATION_S", "20"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
REPORT = Path("docs/benchmarks.md")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def quiesce() -> None:
    """Write dirty pages back before a measured part: the parts before it wrote gigabytes to the broker's log,
    which the kernel otherwise writes back (after 30 s) in the middle of the next part."""
    os.sync()


def envelope_size(bodies: list[bytes]) -> int:
    """Average bytes per record on the bus, so the Kafka tool sends records of the same size."""
    from tapwire_core.envelope import encode
    from tapwire_ingest.clevertap.upload_records import validate_upload

    records = orjson.loads(bodies[0])["d"]
    outcome = validate_upload(records, account_id=ACCOUNT, received_ms=0, request_digest=b"x" * 16)
    return sum(len(encode(e)) for e in outcome.accepted) // len(outcome.accepted)


async def count_visible(url: str, name_filter: list[str]) -> int:
    total = 0
    async with httpx.AsyncClient(timeout=30) as client:
        for name in name_filter:
            response = await client.post(
                f"{url}/1/counts/events.json",
                headers={"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE},
                json={"event_name": name, "from": 20260101, "to": 20260201},
            )
            total += int(response.json()["count"])
    return total


async def time_until_visible(url: str, expected: int, timeout_s: float = 300) -> float:
    from tapwire_services.generate import EVENT_NAMES

    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if await count_visible(url, list(EVENT_NAMES)) >= expected:
            return time.perf_counter() - started
        await asyncio.sleep(0.25)
    raise RuntimeError(f"not all {expected} events visible after {timeout_s}s")


async def load(procs: list[TapwireProcess], bodies: list[bytes]) -> LoadResult:
    return await drive(
        host="127.0.0.1",
        ports=[proc.port for proc in procs],
        account=ACCOUNT,
        passcode=PASSCODE,
        bodies=bodies,
        records_per_body=RECORDS_PER_BODY,
        connections=CONNECTIONS,
        duration_s=DURATION_S,
    )


def bench_gateway(
    work: Path, broker: KafkaBroker, bodies: list[bytes], topic: str, *, processes: int
) -> LoadResult:
    env = {
        "TAPWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'control.db'}",
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_ACCOUNTS": ACCOUNTS,
        "TAPWIRE_EVENTS_TOPIC": topic,
        "TAPWIRE_DEAD_LETTER_TOPIC": topic + ".dlq",
        "TAPWIRE_LOG_LEVEL": "WARNING",
        "TAPWIRE_UPLOAD_CONCURRENCY": "1000",
    }
    with gateway_processes(work, broker, env, name=f"gateway-{topic}", count=processes) as gateways:
        uvloop.run(load(gateways, bodies[:50]))  # warm-up: connections, JIT-free paths, producer metadata
        return uvloop.run(load(gateways, bodies[50:]))


def bench_loader(
    work: Path, broker: KafkaBroker, topic: str, expected_rows: int, number: int
) -> tuple[float, int]:
    """Kafka → loader → chDB over the topic the gateway filled, in a process of its own as ``tapwire serve
    loader`` runs (``tests.bench.loader``): rows per second from the first record fetched to the last row
    acknowledged by chDB (the consumer group join before that is not counted)."""
    rows, seconds, _cpu = measure_in_process(
        broker.bootstrap,
        topic,
        f"bench-loader-{number}",
        work / f"loader-chdb-{number}",
        expected_rows,
        batch_rows=Settings().loader_batch_rows,
    )
    return seconds, rows


def bench_loader_against_raw(
    work: Path, broker: KafkaBroker, topic: str, expected_rows: int
) -> dict[str, Any]:
    """The loader and its physical reference, the raw chDB insert of the same rows (``tests.bench.raw_insert``),
    alternating for ``BENCH_LOADER_ROUNDS`` rounds (default 2): on a shared machine the load moves between two
    runs minutes apart, so each round's pair is side by side and the figures are the rounds' medians."""
    loader_rates: list[float] = []
    raw_rates: list[float] = []
    for number in range(int(os.environ.get("BENCH_LOADER_ROUNDS", "2"))):
        quiesce()
        log(f"loader: Kafka → chDB (round {number + 1}, load average {os.getloadavg()[0]:.1f})")
        loader_s, loader_rows = bench_loader(work, broker, topic, expected_rows, number)
        log(f"  {loader_rows} rows in {loader_s:.2f}s")
        quiesce()
        log("raw insert: the same rows, statement and batch size into chDB straight from files")
        raw = measure_raw_insert(
            broker.bootstrap,
            topic,
            work / f"raw-chdb-{number}",
            loader_rows,
            batch_rows=Settings().loader_batch_rows,
        )
        log(f"  {raw['rows']} rows in {raw['seconds']:.2f}s ({raw['batches']} batches)")
        loader_rates.append(loader_rows / loader_s)
        raw_rates.append(raw["rows"] / raw["seconds"])
    loader_rate, raw_rate = statistics.median(loader_rates), statistics.median(raw_rates)
    return {
        "loader_rows_per_s": round(loader_rate),
        "raw_insert_rows_per_s": round(raw_rate),
        "loader_vs_raw_insert_ratio": round(loader_rate / raw_rate, 3),
        "loader_vs_raw_insert_ratios": [
            round(a / b, 3) for a, b in zip(loader_rates, raw_rates, strict=True)
        ],
    }


def bench_embedded(work: Path, bodies: list[bytes]) -> tuple[LoadResult, float]:
    env = {
        "TAPWIRE_DATA_DIR": str(work / "embedded"),
        "TAPWIRE_ACCOUNTS": ACCOUNTS,
        "TAPWIRE_LOG_LEVEL": "WARNING",
        "TAPWIRE_UPLOAD_CONCURRENCY": "1000",
    }
    suite = TapwireProcess(["up"], env, work / "embedded.log").start()
    try:
        suite.wait_ready()
        result = uvloop.run(load([suite], bodies))
        visible_s = asyncio.run(time_until_visible(suite.url, result.records))
    finally:
        suite.stop()
    return result, visible_s


def bench_messaging() -> dict[str, Any]:
    """In its own process: chDB allows one data directory per process and the loader bench holds one here."""
    return _figures_of([sys.executable, "-m", "tests.bench.messaging"])


def bench_privacy() -> dict[str, Any]:
    """``tests.bench.privacy`` in its own process, for the same reason, on the query benchmark's dataset
    (``BENCH_PRIVACY_EVENTS``, default 10M events, over a tenth as many users, as ``tests.bench.query``)."""
    events = os.environ.get("BENCH_PRIVACY_EVENTS", "10000000")
    args = [
        "--events",
        events,
        "--users",
        str(max(1, int(events) // 10)),
        "--subject-events",
        "10000",
        "--batch",
        "1000",
    ]
    return _figures_of([sys.executable, "-m", "tests.bench.privacy", *args])


def bench_console() -> dict[str, Any]:
    """``tests.bench.console``: a real ``tapwire up`` over ``BENCH_CONSOLE_EVENTS`` (default 1M) events."""
    events = os.environ.get("BENCH_CONSOLE_EVENTS", "1000000")
    args = ["--events", events, "--users", str(max(1, int(events) // 10))]
    return _figures_of([sys.executable, "-m", "tests.bench.console", *args])


def _figures_of(command: list[str]) -> dict[str, Any]:
    """Run a benchmark module; its last output line is its figures as JSON."""
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600)
    figures: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return figures


def bench_triggers() -> dict[str, Any]:
    """``tests.bench.triggers`` in its own process (chDB, one data directory per process): upload-to-SMTP
    latency of triggered messages beside 100 live triggers, and the trigger evaluator's events per second."""
    return _figures_of([sys.executable, "-m", "tests.bench.triggers"])


def bench_hostile() -> dict[str, Any]:
    """``tests.bench.hostile`` in its own process: 64 connections of worst-case bodies against one gateway beside
    valid uploads (its peak memory is the figure, so nothing else runs in that gateway)."""
    return _figures_of([sys.executable, "-m", "tests.bench.hostile"])


def bench_websdk() -> dict[str, Any]:
    """``tests.bench.websdk`` in its own process, on a broker of its own: Web SDK JSONP requests (one event
    each) into one gateway process."""
    return _figures_of([sys.executable, "-m", "tests.bench.websdk"])


PARTS = ("ingest", "messaging", "triggers", "privacy", "query", "hostile", "console", "websdk", "cql")
# Parts over big datasets or several brokers, run only when named in BENCH_ONLY (``make bench`` stays short).
NAMED_PARTS = ("loader-scale", "gateway-accounts", "query-live", "query-growth", "query-growth-30m")


def chosen_parts() -> tuple[str, ...]:
    """``BENCH_ONLY=ingest,query`` runs some parts; unset runs every part."""
    raw = os.environ.get("BENCH_ONLY", "")
    wanted = tuple(p.strip() for p in raw.split(",") if p.strip()) or PARTS
    unknown = sorted(set(wanted) - set(PARTS) - set(NAMED_PARTS))
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown part(s) {unknown}; choose from {list(PARTS + NAMED_PARTS)}")
    return wanted


def main() -> None:
    parts = chosen_parts()
    load = summary.load_average()
    figures: dict[str, Any] = {}
    if "ingest" in parts:
        figures.update(bench_ingestion())
    if "websdk" in parts:
        log("Web SDK: JSONP requests of one event into one gateway process (own process)")
        figures.update(bench_websdk())
    if "messaging" in parts:
        log("messaging: campaign over SMTP to a sink process")
        figures.update(bench_messaging())
    if "triggers" in parts:
        log("triggers: upload → trigger → SMTP sink, and the evaluator's events per second")
        figures.update(bench_triggers())
    # Queries first: they build the cached 10M-event dataset the privacy benchmark then copies.
    if "query" in parts:
        log("queries: compiled CQL against hand-written SQL (own process)")
        figures.update(run_query_benchmark())
    if "privacy" in parts:
        log("privacy worker (own process: chDB allows one data directory per process)")
        figures.update(bench_privacy())
    if "hostile" in parts:
        log("hostile bodies against one gateway, beside valid uploads (own process)")
        figures.update(bench_hostile())
    if "console" in parts:
        log("console: every page and the builder's live count over the 1M-event dataset (tapwire up)")
        figures.update(bench_console())
    if "cql" in parts:
        log("CQL parse + compile at the parser's limits (own process)")
        figures.update(run_cql_compile_benchmark())
    figures.update(named_parts(parts))
    write_report(figures, parts)
    summary.record(figures, load)
    print(orjson.dumps(figures).decode(), flush=True)


def named_parts(parts: tuple[str, ...]) -> dict[str, Any]:
    """The parts ``make bench`` runs only when ``BENCH_ONLY`` names them."""
    figures: dict[str, Any] = {}
    if "loader-scale" in parts:
        log("loader: 1 and 2 processes in distributed mode, 1/4/16 accounts (own broker and rig)")
        figures.update(_figures_of([sys.executable, "-m", "tests.bench.loader_scale"]))
    if "gateway-accounts" in parts:
        log("one gateway process over 1, 4 and 16 accounts (own broker)")
        figures.update(_figures_of([sys.executable, "-m", "tests.bench.gateway_accounts"]))
    if "query-live" in parts:
        log("queries on a live account against the optimised table (own processes)")
        figures.update(query_compare.live())
    growth = (1_000_000, 10_000_000, 30_000_000) if "query-growth-30m" in parts else (1_000_000, 10_000_000)
    if "query-growth" in parts or "query-growth-30m" in parts:
        log(f"query cost growth at {', '.join(f'{size:,}' for size in growth)} events (own processes)")
        figures.update(query_compare.growth(growth))
    return figures


def bench_ingestion() -> dict[str, Any]:
    """Gateway (CleverTap and Segment) against Kafka's own producer tool, the loader, the embedded suite."""
    work = Path(tempfile.mkdtemp(prefix="tapwire-bench-"))
    broker = KafkaBroker(kafka_home(), work / "kafka")
    broker.start()
    try:
        total_bodies = int(os.environ.get("BENCH_MAX_BODIES", "25000"))
        log(f"building {total_bodies} distinct {RECORDS_PER_BODY}-record bodies")
        bodies = upload_bodies(total_bodies, records_per_body=RECORDS_PER_BODY, users=100_000, seed=7)
        record_size = envelope_size(bodies)

        quiesce()
        log("Kafka ProducerPerformance (acks=all)")
        perf = run_producer_perf(kafka_home(), broker.bootstrap, "bench-perf", 2_000_000, record_size)
        log(f"  {perf}")

        quiesce()
        log("gateway → Kafka, one gateway process")
        gateway = bench_gateway(work, broker, bodies, "bench-events", processes=1)
        log(f"  {gateway.records_per_s:.0f} events/s, statuses {gateway.statuses}")

        processes = gateway_processes_wanted()
        quiesce()
        log(f"gateway → Kafka, {processes} gateway processes")
        scaled = bench_gateway(work, broker, bodies, "bench-events-scaled", processes=processes)
        log(f"  {scaled.records_per_s:.0f} events/s, statuses {scaled.statuses}")

        quiesce()
        log("gateway → Kafka, Segment /v1/batch (100 events, gzip)")
        segment = bench_segment_gateway(
            work,
            broker,
            # Enough for 20 s at 60k events/s; gzip-compressing more would only lengthen the set-up.
            segment_bodies(
                min(total_bodies, 12000), records_per_body=RECORDS_PER_BODY, users=100_000, seed=11
            ),
            "bench-segment",
            connections=CONNECTIONS,
            duration_s=DURATION_S,
            processes=1,
        )
        log(f"  {segment.records_per_s:.0f} events/s, statuses {segment.statuses}")

        loader = bench_loader_against_raw(work, broker, "bench-events", gateway.records + 50 * 100)

        quiesce()
        log("embedded suite")
        embedded, visible_s = bench_embedded(work, bodies[: min(len(bodies), 6000)])
        log(f"  {embedded.records_per_s:.0f} events/s; all visible {visible_s:.2f}s after the last 200")
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "gateway_events_per_s": round(gateway.records_per_s),
        "gateway_p50_ms": round(gateway.percentile_ms(50), 2),
        "gateway_p99_ms": round(gateway.percentile_ms(99), 2),
        "gateway_errors": gateway.errors,
        "gateway_scaled_processes": processes,
        "gateway_scaled_events_per_s": round(scaled.records_per_s),
        "gateway_scaled_p99_ms": round(scaled.percentile_ms(99), 2),
        "gateway_scaled_errors": scaled.errors,
        # N processes' rate over N times one process's, both in this run.
        "gateway_scaling_efficiency": round(scaled.records_per_s / (processes * gateway.records_per_s), 3),
        **segment_figures(segment),
        "kafka_perf_events_per_s": round(perf["records_per_s"]),
        "kafka_perf_p99_ms": perf.get("p99_ms"),
        "gateway_vs_kafka_ratio": round(gateway.records_per_s / perf["records_per_s"], 3),
        **loader,
        "embedded_events_per_s": round(embedded.records_per_s),
        "embedded_p99_ms": round(embedded.percentile_ms(99), 2),
        "embedded_visible_after_s": round(visible_s, 2),
        "record_bytes": record_size,
        "connections": CONNECTIONS,
        "duration_s": DURATION_S,
    }


TARGETS = {
    "gateway_events_per_s": 50_000,
    "gateway_vs_kafka_ratio": 0.5,
    "gateway_scaling_efficiency": 0.8,
    "loader_rows_per_s": 100_000,
    "embedded_events_per_s": 20_000,
    "websdk_requests_per_s": 5_000,
    # Events on the topic less answered requests: negative would mean a 200 came before the bus had the event.
    "websdk_stored_minus_answered": 0,
    "messaging_msgs_per_s": 2_000,
    "trigger_events_per_s": 20_000,
    "erasure_batch_subjects_per_s": 20,
    "hostile_valid_success_ratio": 0.99,
    "loader_vs_raw_insert_ratio": 0.8,
}
# Figures that must stay under their target (strictly, or at most for "≤").
CEILINGS: dict[str, tuple[str, float]] = {
    "erasure_verified_s": ("<", 60),
    "export_s": ("<", 5),
    "privacy_tenant_export_peak_rss_mib": ("≤", 256),
    "query_count_p95_max_ms": ("<", 500),
    "console_page_p95_ms": ("<", 300),
    "console_live_count_p95_ms": ("<", 1000),
    "query_vs_handwritten_ratio": ("≤", 1.5),
    "query_live_count_p95_max_ms": ("<", 500),
    "query_live_vs_optimised_ratio": ("≤", 1.3),
    "hostile_peak_rss_mib": ("≤", 512),
    "cql_compile_ms_max": ("<", 50),
    "trigger_to_send_p99_ms": ("<", 5000),
}


def write_report(figures: dict[str, Any], parts: tuple[str, ...] = PARTS) -> None:
    lines = [
        "| figure | value | target | met |",
        "|---|---|---|---|",
    ]
    for key, value in figures.items():
        target, ceiling = TARGETS.get(key), CEILINGS.get(key)
        if target is not None:
            goal, met = f"≥ {target}", "yes" if value >= target else "**no**"
        elif ceiling is not None:
            op, bound = ceiling
            held = value < bound if op == "<" else value <= bound
            goal, met = f"{op} {bound}", "yes" if held else "**no**"
        else:
            goal, met = "", ""
        lines.append(f"| `{key}` | {value} | {goal} | {met} |")
    block = "\n".join(lines)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    marker_start, marker_end = "<!-- bench:latest -->", "<!-- /bench:latest -->"
    which = "" if parts == PARTS else f" (parts: {', '.join(parts)}; `BENCH_ONLY`)"
    latest = f"{marker_start}\nLatest `make bench` run{which}: {stamp} on {machine}.\n\n{block}\n{marker_end}"
    if marker_start in text:
        head, _, rest = text.partition(marker_start)
        _, _, tail = rest.partition(marker_end)
        text = head + latest + tail
    else:
        text = text.rstrip() + "\n\n" + latest + "\n"
    REPORT.write_text(text)


if __name__ == "__main__":
    main()

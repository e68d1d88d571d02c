"""The loader alone, Kafka → ``Loader`` → chDB: ``python -m tests.bench.loader [--events N] [--rounds R]
[--publishers N] [--against DIR] [--batch-rows N] [--against-batch-rows N] [--raw]``.

Fills one topic once (``--events`` generated CleverTap events, 100 per request, published by ``--publishers``
concurrent publishers, default 32, through the gateway's ``CoalescingPublisher``: fewer publishers make smaller
packs), then runs the loader over all of it ``--rounds`` times, each run
in a fresh process with its own consumer group and chDB directory. With ``--against DIR`` (another checkout
of this repository, e.g. ``git worktree add DIR <commit>``) every round runs that checkout's loader too,
alternating, so two versions are compared on the same records under the same load (``--batch-rows`` and
``--against-batch-rows`` set each side's ``loader_batch_rows``, default the setting's, to compare batch sizes;
``--raw`` times the raw chDB insert of the same rows after each of this checkout's runs). Each run reports rows/s
from its first record to its last acknowledged row, and the process CPU time over the same window (cores
used = CPU / wall). The loader runs with the service's defaults but for ``loader_batch_rows``: its batch timer
(``loader_batch_seconds``) is what holds the last, partial batch back, and it counts in the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from tapwire_core.bus.kafka import KafkaBus
from tapwire_core.settings import Settings
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_ingest.clevertap.upload_records import validate_upload
from tapwire_ingest.loader.pipeline import Loader
from tests.bench.loadgen import upload_bodies
from tests.infra.kafka_broker import KafkaBroker, kafka_home

TOPIC = "bench-loader"
PARTITIONS = 12
PUBLISHERS = 32
_SOURCES = ("libs", "ingest", "query", "messaging", "privacy-worker", "services")


async def fill(
    bootstrap: str, events: int, publishers: int = PUBLISHERS, *, topic: str = TOPIC, accounts: int = 1
) -> None:
    """``events`` generated events on ``topic``, request by request spread over ``accounts`` accounts."""
    # Imported here: ``--against`` runs this module on another checkout's packages, which may predate it.
    from tapwire_core.pack_coalescing import CoalescingPublisher

    bus = KafkaBus(bootstrap)
    await bus.start()
    try:
        await bus.ensure_topic(topic, PARTITIONS)
        coalescing = CoalescingPublisher(bus)
        pending = list(enumerate(upload_bodies(events // 100, records_per_body=100, users=100_000, seed=7)))

        async def publisher() -> None:
            while pending:
                number, body = pending.pop()
                outcome = validate_upload(
                    orjson.loads(body)["d"],
                    account_id=f"TAP-BENCH-{number % accounts + 1:04d}",
                    received_ms=1_770_000_000_000,
                    request_digest=b"%16d" % number,
                )
                await coalescing.publish(topic, outcome.accepted, timeout_s=30)

        await asyncio.gather(*(publisher() for _ in range(publishers)))
    finally:
        await bus.close()


def _tune_gc() -> None:
    """As ``tapwire serve loader`` does once started; a checkout from before that tuning (``--against``) has
    none, and runs with the collector's defaults as its service did."""
    try:
        from tapwire_core.gc_tuning import tune_for_throughput
    except ImportError:
        return
    tune_for_throughput()


async def run_once(
    bootstrap: str, group: str, data: Path, events: int, batch_rows: int, *, topic: str = TOPIC
) -> tuple[int, float, float]:
    """Rows stored, seconds from the first record to the last row, process CPU seconds in that window."""
    settings = Settings(
        events_topic=topic,
        dead_letter_topic=topic + ".dlq",
        loader_group=group,
        loader_batch_rows=batch_rows,
    )
    bus = KafkaBus(bootstrap)
    warehouse = ChdbWarehouse(data)
    await bus.start()
    await warehouse.start()
    try:
        await migrate(warehouse, cluster=None)
        _tune_gc()
        loader = Loader(bus=bus, warehouse=warehouse, settings=settings)
        task = asyncio.create_task(loader.run())
        cpu_start: float | None = None
        while loader.rows_written < events:
            if task.done():
                task.result()
            if cpu_start is None and loader.first_record_at is not None:
                cpu_start = time.process_time()
            await asyncio.sleep(0.005)
        assert loader.first_record_at is not None and cpu_start is not None
        elapsed = time.monotonic() - loader.first_record_at
        cpu = time.process_time() - cpu_start
        loader.stop()
        await task
        rows = await warehouse.query("SELECT count() AS n FROM events")
        return int(rows[0]["n"]), elapsed, cpu
    finally:
        await warehouse.close()
        await bus.close()


def measure_in_process(
    bootstrap: str, topic: str, group: str, data: Path, events: int, *, batch_rows: int
) -> tuple[int, float, float]:
    """``run_once`` in a process of its own, as ``tapwire serve loader`` runs: rows, seconds, CPU seconds."""
    line = run_in_process(
        None, bootstrap, group, data, events, batch_rows=batch_rows, extra=["--topic", topic, "--json"]
    )
    figures = orjson.loads(line)
    return int(figures["rows"]), float(figures["seconds"]), float(figures["cpu_s"])


def run_in_process(
    source: Path | None,
    bootstrap: str,
    group: str,
    data: Path,
    events: int,
    *,
    batch_rows: int,
    extra: list[str] | None = None,
) -> str:
    """One run in a fresh process (chDB allows one data directory per process), on ``source``'s code; its last
    output line."""
    env = dict(os.environ)
    repo = Path(__file__).resolve().parents[2]
    paths = [str((source or repo) / name / "src") for name in _SOURCES] + [str(repo)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    args = [
        "--run",
        bootstrap,
        group,
        str(data),
        str(events),
        "--batch-rows",
        str(batch_rows),
        *(extra or []),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.loader", *args],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return done.stdout.strip().splitlines()[-1]


def _raw_beside(broker: KafkaBroker, data: Path, loader_line: str, options: argparse.Namespace) -> str:
    """The raw insert of the same rows and batch size, and the loader's rate over it."""
    from tests.bench.raw_insert import measure_in_process as measure_raw

    load = os.getloadavg()[0]
    raw = measure_raw(broker.bootstrap, TOPIC, data, options.events, batch_rows=options.batch_rows)
    raw_rate = raw["rows"] / raw["seconds"]
    loader_rate = float(loader_line.split(" = ")[1].split(" rows/s", maxsplit=1)[0].replace(",", ""))
    return (
        f"raw chDB insert: {raw['rows']:.0f} rows in {raw['seconds']:.2f}s = {raw_rate:,.0f} rows/s "
        f"({raw['batches']:.0f} batches; load average {load:.2f}); loader / raw {loader_rate / raw_rate:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--publishers",
        type=int,
        default=PUBLISHERS,
        help="concurrent publishers filling the topic: fewer make smaller packs (each publishes 100 records "
        "at a time over 12 partitions, so 8 make packs of about 67, within the 55-100 the gateway makes)",
    )
    parser.add_argument("--against", type=Path, default=None)
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=Settings().loader_batch_rows,
        help="loader_batch_rows of this checkout's runs (default: the setting's default)",
    )
    parser.add_argument(
        "--against-batch-rows",
        type=int,
        default=None,
        help="loader_batch_rows of --against's runs (default: same)",
    )
    parser.add_argument("--run", nargs=4, metavar=("BOOTSTRAP", "GROUP", "DATA", "EVENTS"))
    parser.add_argument("--topic", default=TOPIC, help="with --run: the topic to load")
    parser.add_argument("--json", action="store_true", help="with --run: print the figures as JSON")
    parser.add_argument(
        "--raw",
        action="store_true",
        help="every round also times the raw chDB insert of the same rows (tests.bench.raw_insert) right after "
        "this checkout's loader, and prints the ratio: side by side on a noisy machine",
    )
    options = parser.parse_args()
    if options.run:
        bootstrap, group, data, events = options.run
        rows, elapsed, cpu = asyncio.run(
            run_once(bootstrap, group, Path(data), int(events), options.batch_rows, topic=options.topic)
        )
        if options.json:
            print(orjson.dumps({"rows": rows, "seconds": elapsed, "cpu_s": cpu}).decode())
            return
        print(
            f"{rows} rows in {elapsed:.2f}s = {rows / elapsed:,.0f} rows/s, {cpu:.2f}s CPU ({cpu / elapsed:.2f} cores)"
        )
        return
    work = Path(tempfile.mkdtemp(prefix="tapwire-loader-bench-"))
    broker = KafkaBroker(kafka_home(), work / "kafka")
    broker.start()
    try:
        asyncio.run(fill(broker.bootstrap, options.events, options.publishers))
        versions: list[tuple[str, Path | None, int]] = [("this checkout", None, options.batch_rows)]
        if options.against is not None:
            against_rows = options.against_batch_rows or options.batch_rows
            versions.insert(0, (str(options.against), options.against.resolve(), against_rows))
        for number in range(options.rounds):
            for index, (name, source, batch_rows) in enumerate(versions):
                load = os.getloadavg()[0]
                data = work / f"chdb-{number}-{index}"
                result = run_in_process(
                    source,
                    broker.bootstrap,
                    f"loader-{number}-{index}",
                    data,
                    options.events,
                    batch_rows=batch_rows,
                )
                print(
                    f"round {number} {name} ({batch_rows:,} rows/batch): {result} (load average {load:.2f})",
                    flush=True,
                )
                if options.raw and source is None:
                    print(
                        f"round {number} {_raw_beside(broker, work / f'raw-{number}', result, options)}",
                        flush=True,
                    )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The loader scaled out and spread over accounts: ``python -m tests.bench.loader_scale [--events N]``.

On a broker of its own (12 partitions, as deployed), the same ``--events`` generated events (default 600,000)
are put on three topics: one account, 4 accounts and 16 accounts (request by request, round robin).

- **Distributed mode, 1 and 2 processes**: ``tapwire serve loader`` processes in one consumer group on the
  one-account topic, writing over HTTP to the ClickHouse rig (``tests/rig``, chDB behind ClickHouse's HTTP
  interface), each count on a database of its own. Rows per second from the first row visible in the warehouse
  to the last (process start-up and the group join before it are not counted; a rebalance after it is).
- **Accounts**: the in-process loader (``tests.bench.loader``, chDB) over each topic: many small accounts must
  not load slower than one big one.

Its last output line is one JSON object: ``loader_distributed_rows_per_s`` (one process),
``loader_scaled_rows_per_s`` (two), ``loader_scaling_efficiency`` (two / (2 x one)) and
``loader_rows_per_s_accounts_<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tapwire_core.settings import Settings
from tests.bench.loader import fill, measure_in_process
from tests.credentials import CREDENTIAL_SECRET
from tests.infra.clickhouse import RigProcess, rig_statement
from tests.infra.kafka_broker import KafkaBroker, kafka_home
from tests.integration.processes import TapwireProcess

ACCOUNTS = (1, 4, 16)
POLL_S = 0.1


def log(message: str) -> None:
    print(f"[bench:loader-scale] {message}", file=sys.stderr, flush=True)


def stored(rig: RigProcess, database: str) -> int:
    """Rows in ``database``'s events table; 0 until the loaders' migrations created it."""
    response = httpx.post(
        f"{rig.url}/",
        content=f"SELECT sum(rows) FROM system.parts WHERE database = '{database}' AND table = 'events' AND active",
        timeout=30,
    )
    response.raise_for_status()
    return int(float(response.text.strip() or 0))


def rows_per_s(rig: RigProcess, database: str, events: int, timeout_s: float = 600) -> float:
    """From the last poll that saw no row (loading began after it: at most one poll interval is counted
    too many) to the first that sees ``events`` rows."""
    deadline = time.monotonic() + timeout_s
    empty = time.monotonic()
    while time.monotonic() < deadline:
        count = stored(rig, database)
        now = time.monotonic()
        if not count:
            empty = now
        elif count >= events:
            return count / (now - empty)
        time.sleep(POLL_S)
    raise RuntimeError(f"{database}: not all {events} rows stored after {timeout_s}s")


def distributed(work: Path, broker: KafkaBroker, rig: RigProcess, events: int, processes: int) -> float:
    """``processes`` loaders in one group over the one-account topic: rows per second into the rig."""
    topic = "accounts-1"
    database = f"scaled{processes}"
    rig_statement(rig.url, f"CREATE DATABASE IF NOT EXISTS {database}")
    env = {
        "TAPWIRE_KAFKA_BOOTSTRAP": broker.bootstrap,
        "TAPWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{work / f'control-{processes}.db'}",
        "TAPWIRE_CLICKHOUSE_URL": f"{rig.url}/{database}",
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_EVENTS_TOPIC": topic,
        "TAPWIRE_DEAD_LETTER_TOPIC": topic + ".dlq",
        "TAPWIRE_LOADER_GROUP": f"scaled-{processes}",
        "TAPWIRE_LOG_LEVEL": "WARNING",
    }
    loaders = [
        TapwireProcess(["serve", "loader"], env, work / f"loader-{processes}-{n}.log")
        for n in range(processes)
    ]
    try:
        for loader in loaders:
            loader.start()
        return rows_per_s(rig, database, events)
    finally:
        for loader in loaders:
            loader.kill()


def bench(events: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="tapwire-loader-scale-"))
    broker = KafkaBroker(kafka_home(), work / "kafka")
    (work / "rig").mkdir()
    rig = RigProcess(work / "rig")
    broker.start()
    figures: dict[str, Any] = {"loader_scale_events": events}
    try:
        for accounts in ACCOUNTS:
            log(f"filling a topic with {events} events over {accounts} account(s)")
            asyncio.run(fill(broker.bootstrap, events, topic=f"accounts-{accounts}", accounts=accounts))
        rig.start()
        for processes in (1, 2):
            os.sync()
            load = os.getloadavg()[0]
            rate = distributed(work, broker, rig, events, processes)
            log(f"distributed, {processes} loader process(es): {rate:,.0f} rows/s (load average {load:.2f})")
            figures[f"loader_distributed_{processes}_rows_per_s"] = round(rate)
        rig.stop()
        for accounts in ACCOUNTS:
            os.sync()
            load = os.getloadavg()[0]
            rows, seconds, _cpu = measure_in_process(
                broker.bootstrap,
                f"accounts-{accounts}",
                f"accounts-{accounts}",
                work / f"chdb-{accounts}",
                events,
                batch_rows=Settings().loader_batch_rows,
            )
            log(f"{accounts} account(s): {rows / seconds:,.0f} rows/s (load average {load:.2f})")
            figures[f"loader_rows_per_s_accounts_{accounts}"] = round(rows / seconds)
    finally:
        rig.kill()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    one, two = figures.pop("loader_distributed_1_rows_per_s"), figures.pop("loader_distributed_2_rows_per_s")
    return {
        "loader_distributed_rows_per_s": one,
        "loader_scaled_rows_per_s": two,
        "loader_scaling_efficiency": round(two / (2 * one), 3),
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loader_scale")
    parser.add_argument(
        "--events", type=int, default=int(os.environ.get("BENCH_LOADER_SCALE_EVENTS", "600000"))
    )
    options = parser.parse_args()
    print(orjson.dumps(bench(options.events)).decode(), flush=True)


if __name__ == "__main__":
    main()

"""The loader's physical reference: the same rows inserted into chDB straight from files, with nothing else.

``python -m tests.bench.raw_insert BOOTSTRAP TOPIC DATA EVENTS [--batch-rows N]`` reads the first ``EVENTS``
envelopes of ``TOPIC`` (untimed), cuts them into batches of ``N`` envelopes at pack boundaries as the loader
does (default: the loader's ``loader_batch_rows``), writes each batch as the JSON array the loader hands chDB
to a file, then times ``INSERT INTO events … SELECT … FROM file(…)`` of every file one after the other into a
fresh chDB directory ``DATA``: the loader's own statement (``EVENT_ROWS``), table and batch size, without the
bus, the decoding, the checks or the batching around it. Its last output line is
``{"rows": …, "seconds": …, "batches": …}``. Run it in a process of its own: chDB allows one data directory
per process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from tapwire_core.bus.kafka import KafkaBus
from tapwire_core.envelope_packs import split_pack
from tapwire_core.settings import Settings
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.json_insert import FORMAT
from tapwire_core.warehouse.migrations import migrate
from tapwire_ingest.loader.event_json import EVENT_ROWS, json_rows


async def collect(bootstrap: str, topic: str, events: int, batch_rows: int) -> list[bytes]:
    """The topic's first ``events`` envelopes as JSON arrays of about ``batch_rows`` envelopes each (whole
    packs; a batch closes once it holds ``batch_rows``, as the loader's does)."""
    bus = KafkaBus(bootstrap)
    await bus.start()
    consumer = bus.consumer([topic], f"raw-insert-{os.getpid()}")
    await consumer.start()
    batches: list[bytes] = []
    packs: list[bytes] = []
    held = seen = 0
    try:
        while seen < events:
            for record in await consumer.fetch(max_records=2_000, timeout_s=1.0):
                members = len(split_pack(record.value))
                packs.append(record.value)
                held += members
                seen += members
                if held >= batch_rows:
                    batches.append(json_rows(packs))
                    packs, held = [], 0
        if packs:
            batches.append(json_rows(packs))
    finally:
        await consumer.close()
        await bus.close()
    return batches


async def insert_files(data: Path, files: list[Path]) -> tuple[float, int]:
    """Seconds to insert every file, one after the other, into a fresh, migrated warehouse; rows stored."""
    warehouse = ChdbWarehouse(data)
    await warehouse.start()
    try:
        await migrate(warehouse, cluster=None)
        started = time.perf_counter()
        for file in files:
            source = f"file('{file}', '{FORMAT}', '{EVENT_ROWS.structure}')"
            await warehouse.command(EVENT_ROWS.statement(source))
        seconds = time.perf_counter() - started
        stored = await warehouse.query("SELECT count() AS n FROM events")
        return seconds, int(stored[0]["n"])
    finally:
        await warehouse.close()


async def measure(bootstrap: str, topic: str, data: Path, events: int, batch_rows: int) -> dict[str, float]:
    batches = await collect(bootstrap, topic, events, batch_rows)
    with tempfile.TemporaryDirectory(prefix="tapwire-raw-insert-") as work:
        files = []
        for number, batch in enumerate(batches):
            file = Path(work) / f"batch-{number:05d}.json"
            file.write_bytes(batch)
            files.append(file)
        seconds, rows = await insert_files(data, files)
    return {"rows": rows, "seconds": seconds, "batches": len(batches)}


def measure_in_process(
    bootstrap: str, topic: str, data: Path, events: int, *, batch_rows: int
) -> dict[str, float]:
    """``measure`` in a process of its own (chDB, one data directory per process)."""
    args = [bootstrap, topic, str(data), str(events), "--batch-rows", str(batch_rows)]
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.raw_insert", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    figures: dict[str, float] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.raw_insert")
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("data", type=Path)
    parser.add_argument("events", type=int)
    parser.add_argument("--batch-rows", type=int, default=Settings().loader_batch_rows)
    options = parser.parse_args()
    figures = asyncio.run(
        measure(options.bootstrap, options.topic, options.data, options.events, options.batch_rows)
    )
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()

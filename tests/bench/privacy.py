"""Privacy benchmarks: erasure to verified completion, export, and batched erasure throughput.

``python -m tests.bench.privacy [--events N] [--users U] [--subject-events K] [--batch M]`` builds a warehouse
(chDB) of N generated events over U users plus one subject with K events, runs the real privacy worker loop on
the real clock with default settings (so the second sweep waits ``privacy_sweep_delay_s``), and prints one JSON
object as its last line:

- ``erasure_verified_s``: one subject, from the request to its verified completion (both sweeps);
- ``export_s``: export of the subject with K events, from the request to the finished archive;
- ``erasure_batch_subjects_per_s``: M erasure requests submitted together, divided by the time until every one
  is verified complete.

The issue's figures use ``--events 10000000 --subject-events 10000 --batch 1000``; the defaults are a small run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import orjson

from tapwire_core.control.store import ControlStore
from tapwire_core.envelope import decode_stored, encode
from tapwire_core.settings import Settings
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_ingest.clevertap.upload_records import validate_upload
from tapwire_ingest.loader.rows import TableRows
from tapwire_ingest.loader.writer import write_rows
from tapwire_privacy.deadlines import system_clock
from tapwire_privacy.records import RequestType
from tapwire_privacy.registry import default_registry
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.worker import PrivacyWorker
from tapwire_services.generate import BASE_TS, batches, events, identity_of, profiles

ACCOUNT = "TAP-BENCH-PRIV"
SUBJECT = "bench-subject"


def log(message: str) -> None:
    print(f"[bench:privacy] {message}", file=sys.stderr, flush=True)


async def load(warehouse: ChdbWarehouse, records: list[dict[str, object]], token: str) -> None:
    outcome = validate_upload(
        records, account_id=ACCOUNT, received_ms=BASE_TS * 1000, request_digest=b"b" * 16
    )
    rows = TableRows()
    for envelope in outcome.accepted:
        rows.add(decode_stored(encode(envelope)))
    await write_rows(warehouse, rows, token=token)


async def build(warehouse: ChdbWarehouse, *, total: int, users: int, subject_events: int) -> None:
    for number, chunk in enumerate(batches(profiles(users, seed=11), 50_000)):
        await load(warehouse, chunk, f"p{number}")
    for number, chunk in enumerate(batches(events(users, total, seed=11), 100_000)):
        await load(warehouse, chunk, f"e{number}")
    subject = [
        {"type": "event", "identity": SUBJECT, "ts": BASE_TS + i, "evtName": "Viewed", "evtData": {"i": i}}
        for i in range(subject_events)
    ]
    await load(warehouse, subject, "subject")


async def until_done(repository: PrivacyRepository, ids: list[str], timeout_s: float = 3600) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        views = [await repository.get(i) for i in ids]
        if all(v.status == "completed" for v in views):
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise RuntimeError("privacy requests did not complete in time")


async def submit(repository: PrivacyRepository, type_: RequestType, keys: list[str]) -> str:
    view = await repository.create(
        account_id=ACCOUNT, type=type_, scope="subject", channel="api", jurisdiction="gdpr", keys=keys
    )
    return view.id


async def run(args: argparse.Namespace, work: Path) -> dict[str, float]:
    settings = Settings(data_dir=work)
    warehouse = ChdbWarehouse(work / "chdb", database="bench")
    await warehouse.start()
    await migrate(warehouse, cluster=None)
    store = ControlStore(f"sqlite+aiosqlite:///{work / 'control.db'}")
    await store.start()
    started = time.perf_counter()
    await build(warehouse, total=args.events, users=args.users, subject_events=args.subject_events)
    log(f"dataset: {args.events} events over {args.users} users in {time.perf_counter() - started:.1f}s")
    repository = PrivacyRepository(store.engine, clock=system_clock)
    registry = default_registry(
        warehouse=warehouse, engine=store.engine, export_dir=settings.resolved_export_dir()
    )
    worker = PrivacyWorker(repository=repository, registry=registry, settings=settings, clock=system_clock)
    task = asyncio.create_task(worker.run())
    try:
        export_id = await submit(repository, "export", [f"i:{SUBJECT}"])
        export_s = await until_done(repository, [export_id])
        log(f"export of {args.subject_events} events: {export_s:.2f}s")

        erase_id = await submit(repository, "erasure", [f"i:{SUBJECT}"])
        erasure_s = await until_done(repository, [erase_id])
        log(
            f"one subject erased and verified (two sweeps, {settings.privacy_sweep_delay_s:g}s apart): {erasure_s:.2f}s"
        )

        batch_started = time.perf_counter()
        ids = [await submit(repository, "erasure", [f"i:{identity_of(user)}"]) for user in range(args.batch)]
        await until_done(repository, ids)
        batch_s = time.perf_counter() - batch_started
        log(f"{args.batch} subjects erased and verified: {batch_s:.2f}s")
    finally:
        worker.stop()
        await task
        await store.close()
        await warehouse.close()
    return {
        "erasure_verified_s": round(erasure_s, 2),
        "export_s": round(export_s, 2),
        "erasure_batch_subjects_per_s": round(args.batch / batch_s, 1),
        "privacy_sweep_delay_s": settings.privacy_sweep_delay_s,
        "privacy_dataset_events": args.events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--subject-events", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapwire-bench-privacy-") as work:
        figures = asyncio.run(run(args, Path(work)))
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()

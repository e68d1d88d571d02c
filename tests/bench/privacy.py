"""Privacy benchmarks: erasure to verified completion, export, and batched erasure throughput.

``python -m tests.bench.privacy [--events N] [--users U] [--subject-events K] [--batch M]`` (defaults: 10M
events, 1M users, K = 10,000, M = 1,000) runs the real privacy worker loop on the real clock with default
settings (so the second sweep waits ``privacy_sweep_delay_s``) against the query benchmark's dataset: the
N-event / U-user warehouse ``tests.bench.query`` builds once under ``~/.cache/tapwire/query-bench/<key>``.
That cache is only read: it is copied to a temporary directory (reflinked where the file system can), the
subject's K events (``identity`` ``bench-subject``, spread over the dataset's month) are added to the copy under
the dataset's account, and the partition is merged again (``OPTIMIZE … FINAL``) so the subject's rows share the
parts of everyone else's, as they would after a while in production. When the query benchmark's cache is
missing, the same dataset is built once into ``~/.cache/tapwire/privacy-bench/<key>`` with the query benchmark's
own code. Prints one JSON object as its last line:

- ``erasure_verified_s``: one subject, from the request to its verified completion (both sweeps);
- ``export_s``: export of the subject with K events, from the request to the finished archive (the median of three
  exports, one after another; ``export_max_s`` the slowest);
- ``erasure_batch_subjects_per_s``: M erasure requests submitted together (the dataset's M most active users),
  divided by the time until every one is verified complete;
- ``privacy_tenant_export_peak_rss_mib``: afterwards, an export of the whole account (the N events less the
  erased ones, and every other store) by a privacy worker in a process of its own, as ``tapwire serve
  privacy-worker`` runs it: the suite's modules imported, ClickHouse reached over HTTP (the test rig, serving the
  benchmark's copy from another process); the process's peak resident memory (``VmHWM``; not ``ru_maxrss``,
  which a child inherits from its parent's address space across ``execve``).
  ``privacy_tenant_export_start_rss_mib`` is the same process before the export, ``privacy_tenant_export_s`` its
  time, ``privacy_tenant_export_rows`` the rows written, ``privacy_tenant_export_archive_mib`` the archive's size,
  ``privacy_tenant_export_peak_rss_after_store_mib`` the peak once each store was exported (where it jumps is the
  store that needed the memory). ``--tenant-export-only`` measures just this, on the cached dataset as it is.

Run it in its own process: chDB allows one data directory per process.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from tapwire_core.clock import system_clock
from tapwire_core.control.privacy.models import PrivacyRequestRow
from tapwire_core.control.store import ControlStore
from tapwire_core.privacy.scope import Scope
from tapwire_core.settings import Settings
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_privacy.records import RequestType
from tapwire_privacy.registry import default_registry
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.stores.base import StoreHandler
from tapwire_privacy.worker import PrivacyWorker
from tapwire_services.generate import BASE_TS, DAY_S, identity_of, load
from tests.bench import query
from tests.infra.clickhouse import running_rig

ACCOUNT = query.ACCOUNT
DATABASE = "qbench"
SUBJECT = "bench-subject"
EXPORT_RUNS = 3
OWN_CACHE = query.CACHE.parent / "privacy-bench"


def log(message: str) -> None:
    print(f"[bench:privacy] {message}", file=sys.stderr, flush=True)


async def build_own(path: Path, events: int, users: int) -> None:
    """The query benchmark's dataset, built by its own code into ``path`` (a cache of this benchmark's)."""
    warehouse = ChdbWarehouse(path / "chdb", database=DATABASE)
    await warehouse.start()
    try:
        await query.ensure_dataset(warehouse, events, users, path / "complete.json", cached=False)
    finally:
        await warehouse.close()


def source_dataset(events: int, users: int) -> Path:
    """A complete cached dataset of this size: the query benchmark's, else this benchmark's own (built here
    once, in a child process: chDB allows one data directory per process)."""
    shared = query.dataset_dir(events, users)
    if (shared / "complete.json").exists():
        return shared
    own = OWN_CACHE / shared.name
    if not (own / "complete.json").exists():
        log(f"no cached dataset in {shared}; building one in {own}")
        shutil.rmtree(own, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.bench.privacy",
                "--build-only",
                str(own),
                "--events",
                str(events),
                "--users",
                str(users),
            ],
            check=True,
        )
    return own


def copy_dataset(source: Path, target: Path) -> None:
    """Copy the cached chDB directory; never write into the cache itself."""
    started = time.perf_counter()
    subprocess.run(["cp", "-a", "--reflink=auto", str(source / "chdb"), str(target)], check=True)
    log(f"copied {source} in {time.perf_counter() - started:.1f}s")


async def add_subject(warehouse: ChdbWarehouse, subject_events: int) -> None:
    """The subject's events, spread over the dataset's 30 days, merged into the same parts as the rest."""
    step = max(1, 30 * DAY_S // max(1, subject_events))
    records = (
        {
            "type": "event",
            "identity": SUBJECT,
            "ts": BASE_TS + i * step,
            "evtName": "Viewed",
            "evtData": {"i": i},
        }
        for i in range(subject_events)
    )
    await load(warehouse, records, account_id=ACCOUNT, received_ms=1_770_000_000_000)
    started = time.perf_counter()
    await warehouse.command("OPTIMIZE TABLE events FINAL")
    log(f"subject's {subject_events} events added and merged in {time.perf_counter() - started:.1f}s")


async def until_done(store: ControlStore, ids: list[str], timeout_s: float = 3600) -> float:
    """Seconds until every request in ``ids`` is answered: completed, or for an erasure every store erased and
    verified (it then waits only for its copies on the bus to expire). One query per poll."""
    started = time.perf_counter()
    wanted = set(ids)
    while time.perf_counter() - started < timeout_s:
        async with store.engine.connect() as connection:
            rows = await connection.execute(
                select(PrivacyRequestRow.id, PrivacyRequestRow.status, PrivacyRequestRow.progress).where(
                    PrivacyRequestRow.id.in_(ids)
                )
            )
            done = {
                rid
                for rid, status, progress in rows.all()
                if status == "completed" or (progress or {}).get("phase") == "copies_expiring"
            }
        if done >= wanted:
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise RuntimeError("privacy requests did not complete in time")


async def submit(repository: PrivacyRepository, type_: RequestType, keys: list[str]) -> str:
    view = await repository.requests.create(
        account_id=ACCOUNT, type=type_, scope="subject", channel="api", jurisdiction="gdpr", keys=keys
    )
    return view.id


async def log_trail(repository: PrivacyRepository, request_id: str) -> None:
    """Where the time went: the request's audit trail, as seconds from receipt."""
    trail = await repository.audit.trail(request_id)
    start = trail[0]["at"]
    for entry in trail:
        elapsed = (entry["at"] - start).total_seconds()
        log(f"  +{elapsed:6.2f}s {entry['action']} {entry['store'] or ''} {entry['detail']}")


async def rows_of(warehouse: ChdbWarehouse, identity: str) -> int:
    rows = await warehouse.query(
        "SELECT count() AS n FROM events WHERE account_id = {a:String} AND identity = {i:String}",
        {"a": ACCOUNT, "i": identity},
    )
    return int(rows[0]["n"])


async def run(args: argparse.Namespace, work: Path, source: Path) -> dict[str, Any]:
    settings = Settings(data_dir=work)
    warehouse = ChdbWarehouse(work / "chdb", database=DATABASE)
    await warehouse.start()
    await migrate(warehouse, cluster=None)
    store = ControlStore(f"sqlite+aiosqlite:///{work / 'control.db'}")
    await store.start()
    await add_subject(warehouse, args.subject_events)
    batch_users = [identity_of(user) for user in range(args.batch)]
    batch_rows = sum([await rows_of(warehouse, u) for u in batch_users[:50]])
    log(f"dataset {source.name}; the first 50 of the {args.batch} batch subjects hold {batch_rows} events")
    repository = PrivacyRepository(store.engine, clock=system_clock)
    registry = default_registry(
        warehouse=warehouse, engine=store.engine, export_dir=settings.resolved_export_dir()
    )
    worker = PrivacyWorker(repository=repository, registry=registry, settings=settings, clock=system_clock)
    task = asyncio.create_task(worker.run())
    try:
        exports = []
        for _ in range(EXPORT_RUNS):
            export_id = await submit(repository, "export", [f"i:{SUBJECT}"])
            exports.append(await until_done(store, [export_id]))
        export_s = statistics.median(exports)
        log(
            f"export of {args.subject_events} events, {EXPORT_RUNS} runs: {', '.join(f'{e:.2f}s' for e in exports)}"
        )

        erase_id = await submit(repository, "erasure", [f"i:{SUBJECT}"])
        erasure_s = await until_done(store, [erase_id])
        log(
            f"one subject erased and verified (two sweeps, {settings.privacy_sweep_delay_s:g}s apart): {erasure_s:.2f}s"
        )
        assert await rows_of(warehouse, SUBJECT) == 0
        await log_trail(repository, erase_id)

        batch_started = time.perf_counter()
        # Together, as one CleverTap ``/1/delete/profiles.json`` call with 1,000 identities records them.
        views = await repository.requests.create_many(
            account_id=ACCOUNT,
            type="erasure",
            scope="subject",
            channel="clevertap",
            jurisdiction="gdpr",
            subjects=[[f"i:{user}"] for user in batch_users],
        )
        ids = [view.id for view in views]
        await until_done(store, ids)
        batch_s = time.perf_counter() - batch_started
        log(f"{args.batch} subjects erased and verified: {batch_s:.2f}s")
        await log_trail(repository, ids[-1])
        assert sum([await rows_of(warehouse, u) for u in batch_users[:50]]) == 0
    finally:
        worker.stop()
        await task
        await store.close()
        await warehouse.close()
    return {
        "erasure_verified_s": round(erasure_s, 2),
        "export_s": round(export_s, 2),
        "export_max_s": round(max(exports), 2),
        "erasure_batch_subjects_per_s": round(args.batch / batch_s, 1),
        "privacy_sweep_delay_s": settings.privacy_sweep_delay_s,
        "privacy_dataset_events": args.events,
        "privacy_load_average": round(os.getloadavg()[0], 2),
    }


def rss_mib() -> float:
    """This process's resident memory now (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mib() -> float:
    """This process's peak resident memory so far: ``VmHWM``, the high-water mark of its own address space.

    Not ``ru_maxrss``: Linux carries it across ``execve`` from the address space the process had before, which
    for a child started by ``subprocess`` is its parent's, so a child of a parent that once held 570 MiB reports
    570 MiB whatever it does itself (``VmHWM`` starts afresh with the new program)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def watch_peaks(handlers: list[StoreHandler], peaks: dict[str, float]) -> None:
    """Record, per store, the process's peak resident memory once the store's export is done: the store after
    which the peak jumps is the one that needed the memory."""
    for handler in handlers:
        export = handler.export

        def measured(
            scope: Scope, export: Any = export, name: str = handler.name
        ) -> AsyncGenerator[list[dict[str, Any]], None]:
            async def batches() -> AsyncGenerator[list[dict[str, Any]], None]:
                async for batch in export(scope):
                    yield batch
                peaks[name] = round(peak_rss_mib(), 1)

            return batches()

        handler.export = measured  # type: ignore[method-assign]


async def tenant_export(work: Path, clickhouse_url: str) -> dict[str, Any]:
    """The whole account exported by one worker in this process, which imports what ``tapwire serve`` does
    (run it in a process of its own)."""
    importlib.import_module("tapwire_services.assembly")
    settings = Settings(data_dir=work)
    warehouse = ClickHouseWarehouse(f"{clickhouse_url}/{DATABASE}")
    await warehouse.start()
    store = ControlStore(f"sqlite+aiosqlite:///{work / 'control.db'}")
    await store.start()
    repository = PrivacyRepository(store.engine, clock=system_clock)
    registry = default_registry(
        warehouse=warehouse, engine=store.engine, export_dir=settings.resolved_export_dir()
    )
    peaks: dict[str, float] = {}
    watch_peaks(registry.handlers, peaks)
    worker = PrivacyWorker(repository=repository, registry=registry, settings=settings, clock=system_clock)
    start_rss = rss_mib()
    try:
        view = await repository.requests.create(
            account_id=ACCOUNT, type="export", scope="tenant", channel="api", jurisdiction="gdpr", keys=[]
        )
        started = time.perf_counter()
        while (await repository.requests.get(view.id)).status != "completed":
            if not await worker.tick():
                raise RuntimeError(f"the tenant export stopped: {await repository.requests.get(view.id)}")
        elapsed = time.perf_counter() - started
        done = await repository.requests.get(view.id)
    finally:
        await store.close()
        await warehouse.close()
    rows = sum(int(state["rows"]) for state in done.progress["stores"].values())
    archive = settings.resolved_export_dir() / f"{view.id}.zip"
    return {
        "privacy_tenant_export_rows": rows,
        "privacy_tenant_export_s": round(elapsed, 1),
        "privacy_tenant_export_start_rss_mib": round(start_rss, 1),
        # The process's peak over its whole life (its imports and start-up included), the export included.
        "privacy_tenant_export_peak_rss_mib": round(peak_rss_mib(), 1),
        "privacy_tenant_export_archive_mib": round(archive.stat().st_size / 2**20, 1),
        "privacy_tenant_export_peak_rss_after_store_mib": peaks,
    }


def measure_tenant_export(work: Path) -> dict[str, Any]:
    """``tenant_export`` in a child process, against the ClickHouse HTTP rig on the benchmark's copy (started
    after this process closed its chDB: one engine per directory)."""
    with running_rig(work) as url:
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench.privacy", "--tenant-export", str(work), "--clickhouse", url],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
    figures: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    log(
        f"tenant export: {figures['privacy_tenant_export_rows']} rows in {figures['privacy_tenant_export_s']}s, "
        f"peak RSS {figures['privacy_tenant_export_peak_rss_mib']} MiB "
        f"(at start {figures['privacy_tenant_export_start_rss_mib']} MiB), "
        f"archive {figures['privacy_tenant_export_archive_mib']} MiB; peak after each store (MiB): "
        f"{figures['privacy_tenant_export_peak_rss_after_store_mib']}"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--subject-events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tenant-export", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clickhouse", help=argparse.SUPPRESS)
    parser.add_argument(
        "--tenant-export-only",
        action="store_true",
        help="only the whole-account export of the cached dataset (its peak memory), nothing erased first",
    )
    parser.add_argument(
        "--no-tenant-export",
        action="store_true",
        help="skip the whole-account export (its figures take minutes)",
    )
    args = parser.parse_args()
    if args.tenant_export is not None:
        print(
            orjson.dumps(asyncio.run(tenant_export(args.tenant_export, args.clickhouse))).decode(), flush=True
        )
        return
    if args.build_only is not None:
        args.build_only.mkdir(parents=True, exist_ok=True)
        asyncio.run(build_own(args.build_only, args.events, args.users))
        return
    source = source_dataset(args.events, args.users)
    with tempfile.TemporaryDirectory(prefix="tapwire-bench-privacy-") as work:
        copy_dataset(source, Path(work) / "chdb")
        if args.tenant_export_only:
            print(orjson.dumps(measure_tenant_export(Path(work))).decode(), flush=True)
            return
        figures = asyncio.run(run(args, Path(work), source))
        if not args.no_tenant_export:
            figures.update(measure_tenant_export(Path(work)))
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()

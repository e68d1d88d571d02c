"""TEST CHILD, not product code: a privacy worker that SIGKILLs itself in the middle of an erasure.

Run as ``python -m tests.privacy.worker_child --control URL --clickhouse URL --data DIR --die-in STORE``. It runs
one worker pass with the real handlers, except that the handler named by ``--die-in`` issues its real delete
and then kills the process (SIGKILL: no cleanup, no progress saved for that store). Exits 3 if it never died.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from tapwire_core.clock import system_clock
from tapwire_core.control.store import ControlStore
from tapwire_core.privacy.scope import Scope
from tapwire_core.settings import Settings
from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tapwire_privacy.registry import default_registry
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.stores.base import StoreHandler
from tapwire_privacy.worker import PrivacyWorker


def die_after_erase(handler: StoreHandler) -> None:
    erase = handler.erase

    async def erase_then_die(scopes: Sequence[Scope]) -> None:
        await erase(scopes)
        os.kill(os.getpid(), signal.SIGKILL)

    handler.erase = erase_then_die  # type: ignore[method-assign]


async def main(args: argparse.Namespace) -> int:
    store = ControlStore(args.control)
    await store.start()
    warehouse = ClickHouseWarehouse(args.clickhouse)
    await warehouse.start()
    settings = Settings(data_dir=Path(args.data))
    registry = default_registry(
        warehouse=warehouse, engine=store.engine, export_dir=settings.resolved_export_dir()
    )
    die_after_erase(registry.handler(args.die_in))
    worker = PrivacyWorker(
        repository=PrivacyRepository(store.engine, clock=system_clock),
        registry=registry,
        settings=settings,
        clock=system_clock,
        owner="doomed-worker",
        lease_s=float(args.lease_s),
    )
    await worker.tick()
    return 3


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--control", "--clickhouse", "--data", "--die-in", "--lease-s"):
        parser.add_argument(name, required=True)
    sys.exit(asyncio.run(main(parser.parse_args())))

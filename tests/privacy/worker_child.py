"""TEST CHILD, not product code: a privacy worker that SIGKILLs itself in the middle of a request.

Run as ``python -m tests.privacy.worker_child --control URL --clickhouse URL --data DIR --die-in STORE``. It runs
one worker pass with the real handlers, except that the handler named by ``--die-in`` issues its real delete
and then kills the process (SIGKILL: no cleanup, no progress saved for that store); with ``--die-in-export
STORE`` that handler's export dies after its first batch instead, as a worker killed for memory would. ``--ticks N``
runs up to N passes (an offboarding reaches its erasure on its second). Exits 3 if it never died.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

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


def die_while_exporting(handler: StoreHandler) -> None:
    export = handler.export

    async def export_then_die(scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        async for batch in export(scope):
            yield batch
            os.kill(os.getpid(), signal.SIGKILL)

    handler.export = export_then_die  # type: ignore[method-assign]


async def main(args: argparse.Namespace) -> int:
    store = ControlStore(args.control)
    await store.start()
    warehouse = ClickHouseWarehouse(args.clickhouse)
    await warehouse.start()
    settings = Settings(data_dir=Path(args.data))
    registry = default_registry(
        warehouse=warehouse, engine=store.engine, export_dir=settings.resolved_export_dir()
    )
    if args.die_in:
        stores = {h.name: h for h in [*registry.handlers, *registry.offboarding_handlers]}
        die_after_erase(stores[args.die_in])
    if args.die_in_export:
        die_while_exporting(registry.handler(args.die_in_export))
    worker = PrivacyWorker(
        repository=PrivacyRepository(store.engine, clock=system_clock),
        registry=registry,
        settings=settings,
        clock=system_clock,
        owner="doomed-worker",
        lease_s=float(args.lease_s),
    )
    for _ in range(int(args.ticks)):
        await worker.tick()
    return 3


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--control", "--clickhouse", "--data", "--lease-s"):
        parser.add_argument(name, required=True)
    parser.add_argument("--die-in")
    parser.add_argument("--die-in-export")
    parser.add_argument("--ticks", default="1", help="passes to run before giving up on dying")
    sys.exit(asyncio.run(main(parser.parse_args())))

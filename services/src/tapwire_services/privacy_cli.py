"""``tapwire privacy reapply``: after restoring a backup, erase again every subject the erasure ledger lists.

It queues the erasures and returns; the privacy worker (``tapwire up`` or ``tapwire serve privacy-worker``) runs
them like any other, so run this once the restored stores are back and the services are up. On the embedded
data directory, stop ``tapwire up`` first (one process at a time may open chDB), run this, then start it again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings
from tapwire_services.accounts_cli import control_url


def cmd_reapply(args: argparse.Namespace) -> int:
    return asyncio.run(_reapply(Settings()))


async def _reapply(settings: Settings) -> int:
    from tapwire_core.clock import system_clock
    from tapwire_privacy.ledger import ErasureLedger
    from tapwire_privacy.reapply import reapply
    from tapwire_privacy.repository import PrivacyRepository
    from tapwire_services.cli_warehouse import open_warehouse

    async with ControlStore(control_url(settings)) as store, open_warehouse(settings) as warehouse:
        done = await reapply(
            ledger=ErasureLedger(store.engine, warehouse),
            repository=PrivacyRepository(
                store.engine, clock=system_clock, record_retention_days=settings.privacy_record_retention_days
            ),
            warehouse=warehouse,
            engine=store.engine,
        )
    print(
        f"ledger: {done.accounts} accounts; {done.subjects_found} erased subjects found again; "
        f"{len(done.requests)} erasures queued" + "".join(f"\n  {request_id}" for request_id in done.requests)
    )
    if done.requests:
        print("the privacy worker runs them; follow them with GET /privacy/v1/requests/<id>", file=sys.stderr)
    return 0


def add_commands(privacy: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reapply = privacy.add_parser(
        "reapply",
        help="after restoring a backup: queue an erasure for every subject the erasure ledger lists that the "
        "stores hold again",
    )
    reapply.set_defaults(func=cmd_reapply)

"""Accounts at start-up and the authenticator every service uses."""

from __future__ import annotations

import logging
import sys

from tapwire_core.control.accounts.directory import AccountDirectory
from tapwire_core.control.bootstrap import bootstrap_accounts
from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings

log = logging.getLogger(__name__)


def directory_for(store: ControlStore) -> AccountDirectory:
    return AccountDirectory(store)


async def announce_accounts(store: ControlStore, settings: Settings, *, embedded: bool) -> None:
    """Apply ``TAPWIRE_ACCOUNTS`` (or create the demo account in embedded mode) and tell the operator.

    Demo credentials go to stdout, not the log stream: they are for the person at the terminal, once.
    """
    result = await bootstrap_accounts(
        store, accounts=settings.accounts, region=settings.region, embedded=embedded
    )
    lines = result.announcement()
    if result.demo_credentials is not None:
        print(
            "\n".join([*lines, f"Listening on {settings.resolved_public_url()}"]), file=sys.stdout, flush=True
        )
    elif lines:
        log.info(" ".join(lines))

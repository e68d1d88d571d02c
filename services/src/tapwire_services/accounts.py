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
    """Apply ``TAPWIRE_ACCOUNTS`` (or create the demo account in embedded mode) and tell the operator, with how
    far credentials are from being keyed by the current credential secret.

    Demo credentials go to stdout, not the log stream: they are for the person at the terminal, once. A process
    without ``TAPWIRE_CREDENTIAL_SECRET`` (a loader) leaves the accounts to the services that check credentials.
    """
    if not store.has_lookup_digests:
        if settings.accounts:
            log.info("TAPWIRE_ACCOUNTS is applied by the services that check credentials, not by this one")
        return
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
    await report_lookup_digests(store)


async def report_lookup_digests(store: ControlStore) -> None:
    """Log how many live credentials are not yet under the current credential secret: an older secret may leave
    ``TAPWIRE_CREDENTIAL_SECRET`` only once none is keyed by it (see docs/operations.md, "Rotating secrets")."""
    current = store.lookup_digests.current_secret_id
    counts = await store.live_credentials_by_digest_secret()
    unkeyed = counts.pop(None, 0)
    keyed_now = counts.pop(current, 0)
    older = {secret_id: n for secret_id, n in counts.items() if secret_id is not None}
    fields = {
        "current_secret_id": current,
        "current": keyed_now,
        "older_secrets": older,
        "unkeyed": unkeyed,
    }
    if unkeyed or older:
        log.warning(
            "live credentials not yet under the current credential secret; each is re-keyed when next used",
            extra=fields,
        )
    else:
        log.info("every live credential is keyed by the current credential secret", extra=fields)

"""The suppression list as the gateway and the loader consult it: erased subjects' records are dropped.

The list lives in ``privacy_suppressions`` (salted key hashes, see ``subject_keys``). Each process holds it in
memory and reloads it every ``refresh_s`` seconds, so the per-record check costs one dict lookup for an account
with nothing suppressed and a few keyed hashes otherwise. A record is suppressed when any identifier it names hashes
to a listed key, or when its whole account is listed (``TENANT_WIDE``).

The privacy worker installs suppressions before it erases anything and sweeps every store again after
``refresh_s`` has passed, so a record that slipped through before a process reloaded is still removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core import metrics
from tapwire_core.clock import Clock, system_clock
from tapwire_core.control.privacy.models import SuppressionRow
from tapwire_core.control.privacy.subject_keys import (
    IDENTIFIER_SALT,
    TENANT_WIDE,
    deployment_secret,
    identities_keys,
    key_hash,
)
from tapwire_core.envelope import Envelope, Identities

log = logging.getLogger(__name__)


class SuppressionCheck(Protocol):
    def suppressed(self, account_id: str, ids: Identities) -> bool:
        """True when records of this account naming these identifiers must be dropped. Never blocks."""
        ...

    def any_suppressed(self, account_id: str, keys: Iterable[str]) -> bool:
        """True when any of these subject keys (``i:…``, ``e:…``) is suppressed in the account. Never blocks."""
        ...


def without_suppressed(
    envelopes: Sequence[Envelope], check: SuppressionCheck, *, stage: Literal["gateway", "loader"]
) -> list[Envelope]:
    """``envelopes`` minus the suppressed ones, which are counted in ``tapwire_suppressed_records_total``."""
    kept = [e for e in envelopes if not check.suppressed(e.account_id, e.ids)]
    if len(kept) != len(envelopes):
        metrics.SUPPRESSED_RECORDS.labels(stage).inc(len(envelopes) - len(kept))
    return kept


async def erased_keys(
    session: AsyncSession, *, account_id: str, keys: Iterable[str], now: datetime
) -> set[str]:
    """The subset of ``keys`` (subject keys such as ``i:ann``, ``e:ann@example.com``) listed as erased and not
    expired at ``now``; all of them when the whole account is. One query, however many keys."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    by_hash = {key_hash(salt, account_id, key): key for key in keys}
    if not by_hash:
        return set()
    found = set(
        await session.scalars(
            select(SuppressionRow.key_hash).where(
                SuppressionRow.account_id == account_id,
                SuppressionRow.key_hash.in_([*by_hash, TENANT_WIDE]),
                SuppressionRow.expires_at > now,
            )
        )
    )
    if TENANT_WIDE in found:
        return set(by_hash.values())
    return {by_hash[hashed] for hashed in found}


class SuppressionList:
    """An in-memory copy of the suppression list, reloaded in the background from the control store."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        refresh_s: float = 5.0,
        clock: Clock = system_clock,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._refresh_s = refresh_s
        self._salt: bytes | None = None
        self._by_account: dict[str, frozenset[str]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def refresh_s(self) -> float:
        return self._refresh_s

    def suppressed(self, account_id: str, ids: Identities) -> bool:
        # The common case, an account with nothing suppressed, costs one lookup and no key building.
        if not self._by_account.get(account_id):
            return False
        return self.any_suppressed(account_id, identities_keys(ids))

    def any_suppressed(self, account_id: str, keys: Iterable[str]) -> bool:
        hashes = self._by_account.get(account_id)
        if not hashes or self._salt is None:
            return False
        if TENANT_WIDE in hashes:
            return True
        salt = self._salt
        return any(key_hash(salt, account_id, key) in hashes for key in keys)

    async def reload(self) -> None:
        """Read the unexpired list. Raises SQLAlchemyError when the store is unreachable (the old copy stays)."""
        now = self._clock()
        async with AsyncSession(self._engine) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            rows = await session.execute(
                select(SuppressionRow.account_id, SuppressionRow.key_hash).where(
                    SuppressionRow.expires_at > now
                )
            )
            grouped: dict[str, set[str]] = {}
            for account_id, hashed in rows:
                grouped.setdefault(account_id, set()).add(hashed)
        self._salt = salt
        self._by_account = {account: frozenset(hashes) for account, hashes in grouped.items()}

    async def start(self) -> None:
        """Load once (raising if that fails) and keep reloading in the background."""
        await self.reload()
        self._task = asyncio.create_task(self._keep_fresh(), name="suppression-list")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.reload()
            except Exception:  # a store outage must not stop ingestion; the previous list stays in force
                log.warning("suppression list reload failed; keeping the previous list", exc_info=True)

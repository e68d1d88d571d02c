"""The opt-out list as a gateway consults it: an in-memory copy, brought up to date when older than ``refresh_s``.

A gateway's own opt-outs apply at once (``add``/``remove``); another replica's are seen after at most
``refresh_s``, meanwhile the browser itself drops its requests (its device id carries the opt-out mark).

An update reads only the rows that changed (``changed_at``) since shortly before the previous read, lifts
included (a lifted row stays as a mark for a day): the list of a large account is not read again every few
seconds by every gateway. The overlap (``OVERLAP``) covers a writer whose transaction commits after a read that
started later than its ``changed_at``, and clocks that differ between hosts; re-reading a row is harmless, each
row being the key's whole state. The whole list is read at the start and every ``full_reload_s`` all the same.

The update runs inside the first request that finds the copy stale, one at a time (the others meanwhile use the
copy they have); a failed update keeps the old copy and is retried by the next request after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash
from tapwire_core.control.tracking_opt_outs.models import TrackingOptOutRow

log = logging.getLogger(__name__)

OVERLAP: Final = timedelta(minutes=2)


class TrackingOptOutList:
    """Which subject keys of which accounts opted out. One per process."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        refresh_s: float = 5.0,
        retry_s: float = 1.0,
        full_reload_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._refresh_s = refresh_s
        self._retry_s = retry_s
        self._full_reload_s = full_reload_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._salt: bytes | None = None
        self._by_account: dict[str, set[str]] = {}
        self._due = 0.0
        self._full_due = 0.0
        self._read_since: datetime | None = None
        self._lock = asyncio.Lock()
        self.rows_read = 0
        """Rows the last update read (the whole list on a full reload); for tests and logs."""

    async def fresh(self) -> None:
        """Update when stale. Never raises: a store outage keeps the previous copy. While one request updates,
        the others go on with the copy they have rather than wait for it."""
        if self._clock() < self._due or self._lock.locked():
            return
        async with self._lock:
            if self._clock() < self._due:
                return
            try:
                if self._read_since is None or self._clock() >= self._full_due:
                    await self._reload()
                    self._full_due = self._clock() + self._full_reload_s
                else:
                    await self._update()
                self._due = self._clock() + self._refresh_s
            except Exception:  # the store is down: keep serving with the last copy
                log.warning("opt-out list update failed; keeping the previous list", exc_info=True)
                self._due = self._clock() + self._retry_s

    def opted_out(self, account_id: str, keys: Iterable[str]) -> bool:
        """True when any of ``keys`` opted out. Costs one dict lookup for an account without opt-outs."""
        hashes = self._by_account.get(account_id)
        if not hashes or self._salt is None:
            return False
        salt = self._salt
        return any(key_hash(salt, account_id, key) in hashes for key in keys)

    def add(self, account_id: str, hashes: Iterable[str]) -> None:
        self._by_account.setdefault(account_id, set()).update(hashes)

    def remove(self, account_id: str, hashes: Iterable[str]) -> None:
        self._by_account.get(account_id, set()).difference_update(hashes)

    async def _reload(self) -> None:
        started = self._wall_clock()
        async with AsyncSession(self._engine) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            rows = await session.execute(
                select(TrackingOptOutRow.account_id, TrackingOptOutRow.key_hash).where(
                    TrackingOptOutRow.lifted_at.is_(None)
                )
            )
            grouped: dict[str, set[str]] = {}
            count = 0
            for account_id, hashed in rows:
                grouped.setdefault(account_id, set()).add(hashed)
                count += 1
        self._salt = salt
        self._by_account = grouped
        self._read_since = started - OVERLAP
        self.rows_read = count

    async def _update(self) -> None:
        assert self._read_since is not None
        started = self._wall_clock()
        async with AsyncSession(self._engine) as session, session.begin():
            rows = (
                await session.execute(
                    select(
                        TrackingOptOutRow.account_id,
                        TrackingOptOutRow.key_hash,
                        TrackingOptOutRow.lifted_at,
                    ).where(TrackingOptOutRow.changed_at >= self._read_since)
                )
            ).all()
        for account_id, hashed, lifted_at in rows:
            if lifted_at is None:
                self._by_account.setdefault(account_id, set()).add(hashed)
            else:
                self._by_account.get(account_id, set()).discard(hashed)
        self._read_since = started - OVERLAP
        self.rows_read = len(rows)

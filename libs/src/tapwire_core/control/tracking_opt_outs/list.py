"""The opt-out list as a gateway consults it: an in-memory copy, reloaded when it is older than ``refresh_s``.

A gateway's own opt-outs apply at once (``add``/``remove``); another replica's are seen after at most
``refresh_s``, meanwhile the browser itself drops its requests (its device id carries the opt-out mark).
The reload runs inside the first request that finds the copy stale, one at a time (the others meanwhile use the
copy they have); a failed reload keeps the old copy and is retried by the next request after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash
from tapwire_core.control.tracking_opt_outs.models import TrackingOptOutRow

log = logging.getLogger(__name__)


class TrackingOptOutList:
    """Which subject keys of which accounts opted out. One per process."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        refresh_s: float = 5.0,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._refresh_s = refresh_s
        self._retry_s = retry_s
        self._clock = clock
        self._salt: bytes | None = None
        self._by_account: dict[str, set[str]] = {}
        self._due = 0.0
        self._lock = asyncio.Lock()

    async def fresh(self) -> None:
        """Reload when stale. Never raises: a store outage keeps the previous copy. While one request reloads,
        the others go on with the copy they have rather than wait for it."""
        if self._clock() < self._due or self._lock.locked():
            return
        async with self._lock:
            if self._clock() < self._due:
                return
            try:
                await self._reload()
                self._due = self._clock() + self._refresh_s
            except Exception:  # the store is down: keep serving with the last copy
                log.warning("opt-out list reload failed; keeping the previous list", exc_info=True)
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
        async with AsyncSession(self._engine) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            rows = await session.execute(select(TrackingOptOutRow.account_id, TrackingOptOutRow.key_hash))
            grouped: dict[str, set[str]] = {}
            for account_id, hashed in rows:
                grouped.setdefault(account_id, set()).add(hashed)
        self._salt = salt
        self._by_account = grouped

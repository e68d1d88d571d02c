"""Which users have SDK messages waiting, as a gateway consults it on every client-SDK request.

The gateway's hot path must not ask the database about every request: almost no request has a message waiting.
So each process keeps an in-memory map from (account, user key) to the ids of the messages waiting for that key,
brought up to date when older than ``refresh_s`` by reading only the rows queued or delivered since shortly
before the previous read (``OVERLAP`` covers a writer whose transaction commits late and clocks that differ
between hosts; re-reading a row is harmless, each row saying whether it still waits). The whole set of waiting
rows is read at the start and every ``full_reload_s``. A request whose keys are not in the map costs one dict
lookup; the database is asked only for the ids the map names.

A message queued by messaging reaches the SDK on the user's first request after the next update (at most
``refresh_s`` later). A message another gateway delivered leaves this map at the next update; until then a
request of that user costs one query that takes nothing.

The update runs inside the first request that finds the map stale, one at a time (the others use the map they
have); a failed update keeps the old map and is retried after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.sdk_messages.store import changes_since

log = logging.getLogger(__name__)

OVERLAP_MS: Final = 120_000
_RECENT_ENTRIES: Final = 10_000
_RECENT_TTL_S: Final = 300.0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class WaitingSdkMessages:
    """Message ids waiting per (account, user key). One per process."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        refresh_s: float = 1.0,
        retry_s: float = 1.0,
        full_reload_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self._engine = engine
        self._refresh_s = refresh_s
        self._retry_s = retry_s
        self._full_reload_s = full_reload_s
        self._clock = clock
        self._wall_ms = wall_ms
        self._by_key: dict[tuple[str, str], set[int]] = {}
        self._keys_of: dict[int, tuple[str, tuple[str, ...]]] = {}
        # (account, key) → (request, ids) handed out lately: a retry of that request gets them again.
        self._recent: OrderedDict[tuple[str, str], tuple[str, frozenset[int], float]] = OrderedDict()
        self._due = 0.0
        self._full_due = 0.0
        self._read_since_ms: int | None = None
        self._lock = asyncio.Lock()
        self.rows_read = 0
        """Rows the last update read; for tests and logs."""

    def stale(self) -> bool:
        """Whether ``fresh`` would read now: a check without a coroutine, for the hot path."""
        return self._clock() >= self._due and not self._lock.locked()

    async def fresh(self) -> None:
        """Update when stale. Never raises: a store outage keeps the previous map."""
        if self._clock() < self._due or self._lock.locked():
            return
        async with self._lock:
            if self._clock() < self._due:
                return
            try:
                full = self._read_since_ms is None or self._clock() >= self._full_due
                await self._update(full=full)
                if full:
                    self._full_due = self._clock() + self._full_reload_s
                self._due = self._clock() + self._refresh_s
            except Exception:  # the store is down: keep serving with the last map
                log.warning("SDK message index update failed; keeping the previous one", exc_info=True)
                self._due = self._clock() + self._retry_s

    def waiting(self, account_id: str, keys: Iterable[str]) -> set[int]:
        """Ids of the messages waiting for any of ``keys``; empty (one dict lookup per key) for most users."""
        if not self._by_key:
            return set()
        found: set[int] = set()
        for key in keys:
            ids = self._by_key.get((account_id, key))
            if ids:
                found |= ids
        return found

    def recently_taken(self, account_id: str, key: str) -> tuple[str, frozenset[int]] | None:
        """The request that lately took messages for ``key`` and their ids, for a retry of that request."""
        if not self._recent:
            return None
        entry = self._recent.get((account_id, key))
        if entry is None:
            return None
        if entry[2] <= self._clock():
            del self._recent[(account_id, key)]
            return None
        return entry[0], entry[1]

    def handed_out(
        self, account_id: str, key: str, request: str, asked: set[int], taken: Iterable[int]
    ) -> None:
        """``asked`` were looked up for ``request`` and ``taken`` went to it: none of them waits any more here."""
        taken = frozenset(taken)
        for message_id in asked | taken:
            self._drop(message_id)
        if taken:
            self._recent[(account_id, key)] = (request, taken, self._clock() + _RECENT_TTL_S)
            self._recent.move_to_end((account_id, key))
            while len(self._recent) > _RECENT_ENTRIES:
                self._recent.popitem(last=False)

    async def _update(self, *, full: bool) -> None:
        started_ms = self._wall_ms()
        changes = await changes_since(
            self._engine, since_ms=None if full else self._read_since_ms, now_ms=started_ms
        )
        if full:
            self._by_key = {}
            self._keys_of = {}
        for change in changes:
            if change.waiting:
                self._add(change.id, change.account_id, change.lookup_keys)
            else:
                self._drop(change.id)
        self._read_since_ms = started_ms - OVERLAP_MS
        self.rows_read = len(changes)

    def _add(self, message_id: int, account_id: str, keys: tuple[str, ...]) -> None:
        if message_id in self._keys_of:
            return
        self._keys_of[message_id] = (account_id, keys)
        for key in keys:
            self._by_key.setdefault((account_id, key), set()).add(message_id)

    def _drop(self, message_id: int) -> None:
        entry = self._keys_of.pop(message_id, None)
        if entry is None:
            return
        account_id, keys = entry
        for key in keys:
            ids = self._by_key.get((account_id, key))
            if ids is not None:
                ids.discard(message_id)
                if not ids:
                    del self._by_key[(account_id, key)]

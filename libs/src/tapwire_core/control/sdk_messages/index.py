"""Whether an SDK message may wait for a user, as a gateway asks on every client-SDK request.

The gateway's hot path must not ask the database about every request: almost no request has a message waiting.
So each process keeps a Bloom filter of the (account, user key) pairs that messages wait for, at about ten bits a
key (a campaign to ten million users' three keys each is some 40 MB, not a dictionary entry per key), brought up
to date when older than ``refresh_s`` by reading the keys of the messages queued since shortly before the previous
read (``OVERLAP_MS`` covers a writer whose transaction commits late and clocks that differ between hosts). The
filter is rebuilt from the messages still waiting every ``full_reload_s``, which drops delivered and expired ones,
and earlier when more keys were added than it was sized for.

A request whose keys are not in the filter costs a hash and a few bit probes. The filter answers "maybe" for a
key a message waits for, for one whose message was delivered since the last rebuild, and for about one key in a
hundred of the rest; the database is then asked once, and the key is remembered as checked (a bounded memory of
``checked_entries`` keys) until a newer message for it arrives. So a user who got their message, or a false
positive, costs one query per rebuild, not one per request.

A message queued by messaging reaches the SDK on the user's first request after the next update (at most
``refresh_s`` later). The update runs inside the first request that finds the filter stale, one at a time (the
others use the filter they have); a failed update keeps the old one and is retried after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.sdk_messages.store import waiting_keys_since

log = logging.getLogger(__name__)

OVERLAP_MS: Final = 120_000
_MIN_CAPACITY: Final = 100_000
_FALSE_POSITIVE_RATE: Final = 0.01
_RECENT_ENTRIES: Final = 10_000
_RECENT_TTL_S: Final = 300.0
_MASK32: Final = 0xFFFFFFFF


class KeyFilter:
    """A Bloom filter of (account, key) pairs, sized for ``capacity`` of them at a 1% false-positive rate. It
    hashes with Python's own ``hash``, randomised per process, which is fine for a filter that never leaves it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        bits = math.ceil(-capacity * math.log(_FALSE_POSITIVE_RATE) / math.log(2) ** 2)
        self._bits = bytearray((bits + 7) // 8)
        self._size = bits
        self._probes = max(1, round(bits / capacity * math.log(2)))
        self.count = 0

    def add(self, item: tuple[str, str]) -> None:
        digest = hash(item)
        first, step = digest & _MASK32, ((digest >> 32) & _MASK32) | 1
        bits, size = self._bits, self._size
        for i in range(self._probes):
            position = (first + i * step) % size
            bits[position >> 3] |= 1 << (position & 7)
        self.count += 1

    def __contains__(self, item: tuple[str, str]) -> bool:
        # Double hashing from one 64-bit hash (Kirsch and Mitzenmacher); most absent items stop at the first probe.
        digest = hash(item)
        first, step = digest & _MASK32, ((digest >> 32) & _MASK32) | 1
        bits, size = self._bits, self._size
        for i in range(self._probes):
            position = (first + i * step) % size
            if not bits[position >> 3] & (1 << (position & 7)):
                return False
        return True


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class WaitingSdkMessages:
    """Which (account, user key) pairs may have SDK messages waiting. One per process."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        refresh_s: float = 1.0,
        retry_s: float = 1.0,
        full_reload_s: float = 600.0,
        checked_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self._engine = engine
        self._refresh_s = refresh_s
        self._retry_s = retry_s
        self._full_reload_s = full_reload_s
        self._checked_entries = checked_entries
        self._clock = clock
        self._wall_ms = wall_ms
        self._filter = KeyFilter(_MIN_CAPACITY)
        # Keys the database was asked about since the filter last said a message arrived for them: nothing waits.
        self._checked: OrderedDict[tuple[str, str], None] = OrderedDict()
        # (account, device key) → (request, until): the request that lately took messages, for a retry of it.
        self._recent: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._due = 0.0
        self._full_due = 0.0
        self._read_since_ms: int | None = None
        self._lock = asyncio.Lock()
        self.rows_read = 0
        """Keys the last update read; for tests and logs."""

    def stale(self) -> bool:
        """Whether ``fresh`` would read now: a check without a coroutine, for the hot path."""
        return self._clock() >= self._due and not self._lock.locked()

    async def fresh(self) -> None:
        """Update when stale. Never raises: a store outage keeps the previous filter."""
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
            except Exception:  # the store is down: keep serving with the last filter
                log.warning("SDK message filter update failed; keeping the previous one", exc_info=True)
                self._due = self._clock() + self._retry_s

    def may_wait(self, account_id: str, keys: Sequence[str]) -> bool:
        """Whether a message may wait for any of ``keys``: False (a hash and a few bit probes per key) for
        nearly every user with nothing waiting."""
        if not self._filter.count:
            return False
        for key in keys:
            item = (account_id, key)
            if item in self._filter and item not in self._checked:
                return True
        return False

    def recent_request(self, account_id: str, key: str) -> str | None:
        """The request that lately took messages for ``key``, for a retry of that request."""
        if not self._recent:
            return None
        entry = self._recent.get((account_id, key))
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._recent[(account_id, key)]
            return None
        return entry[0]

    def checked(self, account_id: str, keys: Sequence[str], request: str, *, took: bool) -> None:
        """The database was asked for ``keys`` on behalf of ``request``: nothing waits for them any more (until
        a newer message arrives); when ``took``, a retry of ``request`` may ask again."""
        for key in keys:
            self._checked[(account_id, key)] = None
            self._checked.move_to_end((account_id, key))
        while len(self._checked) > self._checked_entries:
            self._checked.popitem(last=False)
        if took:
            self.remember_request(account_id, keys[0], request)

    def remember_request(self, account_id: str, key: str, request: str) -> None:
        """``request`` took messages for ``key``: a retry of it may ask again for a while."""
        self._recent[(account_id, key)] = (request, self._clock() + _RECENT_TTL_S)
        self._recent.move_to_end((account_id, key))
        while len(self._recent) > _RECENT_ENTRIES:
            self._recent.popitem(last=False)

    async def _update(self, *, full: bool) -> None:
        started_ms = self._wall_ms()
        keys = await waiting_keys_since(
            self._engine, since_ms=None if full else self._read_since_ms, now_ms=started_ms
        )
        if full:
            self._filter = KeyFilter(max(_MIN_CAPACITY, 2 * len(keys)))
            self._checked.clear()
        for item in keys:
            self._filter.add(item)
            self._checked.pop(item, None)
        if self._filter.count > self._filter.capacity:
            self._full_due = 0.0  # more keys than the filter was sized for: rebuild it at the next update
        self._read_since_ms = started_ms - OVERLAP_MS
        self.rows_read = len(keys)

"""A sliding-window rate limit for the unauthenticated intake endpoint, in process memory."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimit:
    """At most ``limit`` hits per key in any ``window_s`` seconds. Bounded memory: ``max_keys`` keys at most,
    the oldest forgotten first. Single event loop, no lock needed (no await inside)."""

    def __init__(
        self,
        *,
        limit: int,
        window_s: float = 60.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def retry_after(self, *keys: str) -> int | None:
        """Record a hit on every key and return None, or, when any key is at its limit, record nothing and
        return the seconds until it frees up."""
        now = self._clock()
        waits = []
        for key in keys:
            hits = self._hits.get(key)
            if hits is None:
                continue
            while hits and hits[0] <= now - self._window_s:
                hits.popleft()
            if len(hits) >= self._limit:
                waits.append(hits[0] + self._window_s - now)
        if waits:
            return max(1, int(max(waits) + 0.999))
        for key in keys:
            self._hits.setdefault(key, deque()).append(now)
        while len(self._hits) > self._max_keys:
            self._hits.pop(next(iter(self._hits)))
        return None

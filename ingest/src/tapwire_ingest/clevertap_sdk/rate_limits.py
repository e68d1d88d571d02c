"""Token buckets for the public SDK endpoints: per client address and per account, refused with 429.

These endpoints carry no secret (the account id is in every web page that embeds the SDK), so a flood from one
address or aimed at one account must be turned away before it costs a publish. Buckets live in process memory:
with several gateway replicas the limits hold per replica, which bounds each replica's work, the point of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBuckets:
    """One bucket per key, refilled at ``rate`` tokens per second up to ``burst``. Not thread-safe (one per
    event loop). Holds at most ``max_keys`` buckets: past that, full buckets (keys idle long enough to have
    refilled) are forgotten, which changes nothing for them, and if none is full the oldest half go."""

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, *, rate: float | None = None, burst: float | None = None) -> int:
        """Take one token: 0 when granted, else the whole seconds to wait (for ``Retry-After``).

        ``rate``/``burst`` override the defaults for this key (an account's own limit).
        """
        rate = rate or self.rate
        burst = burst or self.burst
        now = self._clock()
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > self._max_keys:
                self._forget_idle(now)
            return 0
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / rate))

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_idle(self, now: float) -> None:
        refill_s = self.burst / self.rate
        idle = [key for key, (_, last) in self._buckets.items() if now - last >= refill_s]
        if not idle:
            idle = list(self._buckets)[: len(self._buckets) // 2]
        for key in idle:
            del self._buckets[key]

"""Failed authentications per client address: past a limit, the address is refused without any lookup."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TooManyFailures(Exception):
    """The client failed to authenticate too often; it may try again in ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed authentications; retry in {retry_after_s}s")
        self.retry_after_s = retry_after_s


class FailureLimit:
    """At most ``limit`` failures per client in each ``window_s`` window (fixed windows: one counter per client).

    Bounded memory: ``max_clients`` clients at most, the least recently seen forgotten first. Single event loop,
    no await inside, so no lock.
    """

    def __init__(
        self,
        *,
        limit: int = 20,
        window_s: float = 60.0,
        max_clients: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_clients = max_clients
        self._clock = clock
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def check(self, client: str) -> None:
        """Raise TooManyFailures while ``client`` is over its limit."""
        started, failures = self._current(client)
        if failures >= self._limit:
            raise TooManyFailures(max(1, math.ceil(started + self._window_s - self._clock())))

    def record(self, client: str) -> None:
        started, failures = self._current(client)
        self._windows[client] = (started, failures + 1)
        self._windows.move_to_end(client)
        while len(self._windows) > self._max_clients:
            self._windows.popitem(last=False)

    def _current(self, client: str) -> tuple[float, int]:
        now = self._clock()
        window = self._windows.get(client)
        if window is None or window[0] + self._window_s <= now:
            return now, 0
        return window

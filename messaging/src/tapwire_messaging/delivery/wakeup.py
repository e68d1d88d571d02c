"""A shared nudge for the polling loops: work may be due now, look instead of waiting for the next poll."""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        """Wake every loop waiting in :meth:`wait` (or the next one to wait). Never blocks."""
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Return after ``seconds`` or as soon as :meth:`set` was called, whichever is first; a wake-up is
        consumed by the loop it woke."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        self._event.clear()

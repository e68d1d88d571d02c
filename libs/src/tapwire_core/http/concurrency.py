"""Per-account limit on requests in flight (CleverTap allows 15 concurrent uploads per account)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tapwire_core.http.errors import ApiError


class ConcurrencyLimiter:
    """Refuses, rather than queues, a request past the account's limit: 429 tells the client to back off.

    Single-threaded asyncio state; no lock needed because check-and-increment has no await in between.
    """

    def __init__(self, *, retry_after_s: int = 1) -> None:
        self._in_flight: dict[str, int] = {}
        self._retry_after_s = retry_after_s

    @asynccontextmanager
    async def slot(self, account_id: str, limit: int) -> AsyncIterator[None]:
        current = self._in_flight.get(account_id, 0)
        if current >= limit:
            raise ApiError(
                429,
                f"Too many concurrent requests (limit {limit} per account)",
                retry_after=self._retry_after_s,
            )
        self._in_flight[account_id] = current + 1
        try:
            yield
        finally:
            remaining = self._in_flight[account_id] - 1
            if remaining:
                self._in_flight[account_id] = remaining
            else:
                del self._in_flight[account_id]

    def in_flight(self, account_id: str) -> int:
        return self._in_flight.get(account_id, 0)

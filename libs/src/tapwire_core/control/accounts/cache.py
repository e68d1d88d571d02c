"""A bounded, time-limited map of verified credentials, so the ingestion path skips scrypt on repeat requests."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tapwire_core.control.accounts.types import Account


@dataclass(frozen=True)
class _Entry:
    account: Account
    expires_at: float


class VerifiedCredentialCache:
    """Least-recently-used entries keyed by a credential's lookup digest, each valid for ``ttl_s``.

    Keys are SHA-256 digests of (account id, secret), never secrets. ``generation`` moves on every invalidation so
    a lookup that raced with a revocation can tell that its result must not be cached. Not thread-safe: one per
    event loop.
    """

    def __init__(
        self, *, ttl_s: float = 60.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("the cache needs max_entries >= 1 and ttl_s > 0")
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> Account | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return entry.account

    def put(self, digest: str, account: Account, *, generation: int) -> None:
        """Remember a verified credential, unless an invalidation happened since ``generation`` was read."""
        if generation != self.generation:
            return
        self._entries[digest] = _Entry(account, self._clock() + self._ttl_s)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def invalidate_account(self, account_id: str) -> None:
        """Forget every credential of ``account_id`` (its credentials or settings changed)."""
        self.generation += 1
        for digest in [d for d, e in self._entries.items() if e.account.id == account_id]:
            del self._entries[digest]

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

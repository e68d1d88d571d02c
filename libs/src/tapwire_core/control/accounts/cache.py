"""Bounded, time-limited maps of credentials: verified ones, so the ingestion path skips scrypt on repeat
requests, and refused ones, so a wrong secret sent again costs no database query."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tapwire_core.control.accounts.types import Account


@dataclass(frozen=True)
class CachedVerification:
    account: Account
    secret_hash: str
    """The stored hash the secret was verified against: a refresh that finds it unchanged needs no scrypt."""
    expires_at: float

    def fresh(self, now: float) -> bool:
        return now < self.expires_at


class VerifiedCredentialCache:
    """Least-recently-used entries keyed by a credential's lookup digest, each fresh for ``ttl_s`` and kept
    ``stale_s`` longer, to be used only while the store cannot be reached.

    Keys are lookup digests, never secrets. ``generation`` moves on every invalidation so a lookup that raced with
    a revocation can tell that its result must not be cached. Not thread-safe: one per event loop.
    """

    def __init__(
        self,
        *,
        ttl_s: float = 60.0,
        stale_s: float = 0.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_s <= 0 or stale_s < 0:
            raise ValueError("the cache needs max_entries >= 1, ttl_s > 0 and stale_s >= 0")
        self._ttl_s = ttl_s
        self._stale_s = stale_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, CachedVerification] = OrderedDict()
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> Account | None:
        """The account while its entry is fresh."""
        entry = self.entry(digest)
        return entry.account if entry is not None and entry.fresh(self._clock()) else None

    def entry(self, digest: str) -> CachedVerification | None:
        """The entry, fresh or stale; None once past its stale time."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.expires_at + self._stale_s <= self._clock():
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return entry

    def put(self, digest: str, account: Account, *, generation: int, secret_hash: str = "") -> None:
        """Remember a verified credential, unless an invalidation happened since ``generation`` was read."""
        if generation != self.generation:
            return
        self._entries[digest] = CachedVerification(account, secret_hash, self._clock() + self._ttl_s)
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


class RefusedCredentialCache:
    """Lookup digests that matched no live credential (or failed verification), remembered for ``ttl_s``.

    Short-lived on purpose: a credential created by another process is refused for at most ``ttl_s``. Cleared
    whenever this process sees any credential change.
    """

    def __init__(
        self, *, ttl_s: float = 10.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._until: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, digest: str) -> bool:
        until = self._until.get(digest)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[digest]
            return False
        return True

    def add(self, digest: str) -> None:
        self._until[digest] = self._clock() + self._ttl_s
        self._until.move_to_end(digest)
        while len(self._until) > self._max_entries:
            self._until.popitem(last=False)

    def clear(self) -> None:
        self._until.clear()

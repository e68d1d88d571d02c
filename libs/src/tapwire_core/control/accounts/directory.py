"""Authenticating requests against the store, with an in-process cache of verified credentials."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from typing import Protocol

from tapwire_core.control.accounts.cache import VerifiedCredentialCache
from tapwire_core.control.accounts.hashing import passcode_digest, verify_secret, write_key_digest
from tapwire_core.control.accounts.types import Account, CredentialKind, CredentialMatch


class CredentialSource(Protocol):
    """What the directory needs from the store (``ControlStore`` provides it)."""

    async def match_credential(self, *, kind: CredentialKind, digest: str) -> CredentialMatch | None: ...

    def add_credentials_listener(self, listener: Callable[[str], None]) -> None: ...


class AccountDirectory:
    """Answers "which account holds this secret?" for the gateway and the APIs.

    A hit in the cache costs a hash and a dict lookup; a miss costs one indexed query and, only when the digest
    matches a live credential, one scrypt verification in a worker thread. A revocation or credential change made
    through a store in this process drops the account's entries at once; one made by another process is seen after
    at most ``ttl_s``. Wrong secrets are never cached, and never reach scrypt unless their digest matches.
    """

    def __init__(
        self,
        source: CredentialSource,
        *,
        ttl_s: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._cache = VerifiedCredentialCache(ttl_s=ttl_s, max_entries=max_entries, clock=clock)
        source.add_credentials_listener(self._cache.invalidate_account)

    @property
    def cached_entries(self) -> int:
        return len(self._cache)

    async def authenticate_passcode(self, account_id: str, passcode: str) -> Account | None:
        """The account when ``passcode`` is one of its live passcodes, else None. Never raises for bad input."""
        if not account_id or not passcode:
            return None
        account = await self._authenticate("passcode", passcode_digest(account_id, passcode), passcode)
        if account is None or not hmac.compare_digest(account.id.encode(), account_id.encode()):
            return None
        return account

    async def authenticate_write_key(self, write_key: str) -> Account | None:
        """The account holding ``write_key`` as a live write key, else None."""
        if not write_key:
            return None
        return await self._authenticate("write_key", write_key_digest(write_key), write_key)

    def invalidate(self, account_id: str | None = None) -> None:
        """Drop cached verifications, of one account or of all (after a change made by another process)."""
        if account_id is None:
            self._cache.clear()
        else:
            self._cache.invalidate_account(account_id)

    async def _authenticate(self, kind: CredentialKind, digest: str, secret: str) -> Account | None:
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        generation = self._cache.generation
        match = await self._source.match_credential(kind=kind, digest=digest)
        if match is None:
            return None
        if not await asyncio.to_thread(verify_secret, secret, match.secret_hash):
            return None
        self._cache.put(digest, match.account, generation=generation)
        return match.account

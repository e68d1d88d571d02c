"""Authenticating requests against the store, with in-process caches of verified and refused credentials."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from tapwire_core.control.accounts.cache import RefusedCredentialCache, VerifiedCredentialCache
from tapwire_core.control.accounts.failures import FailureLimit
from tapwire_core.control.accounts.hashing import passcode_digest, verify_secret, write_key_digest
from tapwire_core.control.accounts.types import Account, CredentialKind, CredentialMatch

log = logging.getLogger(__name__)


class CredentialStoreUnavailable(Exception):
    """The store could not be asked and no earlier verification of this credential is at hand."""


class CredentialSource(Protocol):
    """What the directory needs from the store (``ControlStore`` provides it)."""

    async def match_credential(self, *, kind: CredentialKind, digest: str) -> CredentialMatch | None:
        """The live credential with this digest. Raises SQLAlchemyError or OSError when the store is down."""
        ...

    def add_credentials_listener(self, listener: Callable[[str], None]) -> None: ...


class AccountDirectory:
    """Answers "which account holds this secret?" for the gateway and the APIs.

    - A fresh cache hit costs a hash and a dict lookup. A miss costs one indexed query and, only when the digest
      matches a live credential whose hash this process has not verified yet, one scrypt in a worker thread.
      Requests that miss on the same credential at once share one lookup (no scrypt stampede when an entry expires).
    - A secret that matched nothing, or failed verification, is refused from memory for ``refused_ttl_s``; a client
      address with ``failures_per_minute`` failures is refused (TooManyFailures) without any lookup, unless its
      credential is in the verified cache.
    - When the store cannot be reached, a credential verified earlier keeps working for ``stale_s`` past its
      expiry; any other raises CredentialStoreUnavailable.
    - A revocation or credential change made through a store in this process drops the account's entries (and
      every refusal) at once; one made by another process is seen after at most ``ttl_s`` (``refused_ttl_s``).
    """

    def __init__(
        self,
        source: CredentialSource,
        *,
        ttl_s: float = 60.0,
        stale_s: float = 3600.0,
        refused_ttl_s: float = 10.0,
        failures_per_minute: int = 20,
        lookup_timeout_s: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._cache = VerifiedCredentialCache(
            ttl_s=ttl_s, stale_s=stale_s, max_entries=max_entries, clock=clock
        )
        self._refused = RefusedCredentialCache(ttl_s=refused_ttl_s, max_entries=max_entries, clock=clock)
        self._failures = FailureLimit(limit=failures_per_minute, clock=clock)
        self._lookup_timeout_s = lookup_timeout_s
        self._flights: dict[str, asyncio.Future[Account | None]] = {}
        source.add_credentials_listener(self._changed)

    @property
    def cached_entries(self) -> int:
        return len(self._cache)

    async def authenticate_passcode(
        self, account_id: str, passcode: str, *, client: str | None = None
    ) -> Account | None:
        """The account when ``passcode`` is one of its live passcodes, else None. Raises TooManyFailures for a
        client over its failure limit, CredentialStoreUnavailable when the store cannot answer."""
        if not account_id or not passcode:
            return None
        digest = passcode_digest(account_id, passcode)
        account = await self._authenticate("passcode", digest, passcode, client)
        if account is None or not hmac.compare_digest(account.id.encode(), account_id.encode()):
            return None
        return account

    async def authenticate_write_key(self, write_key: str, *, client: str | None = None) -> Account | None:
        """The account holding ``write_key`` as a live write key, else None. Raises as ``authenticate_passcode``."""
        if not write_key:
            return None
        return await self._authenticate("write_key", write_key_digest(write_key), write_key, client)

    def invalidate(self, account_id: str | None = None) -> None:
        """Drop cached verifications, of one account or of all (after a change made by another process)."""
        self._refused.clear()
        if account_id is None:
            self._cache.clear()
        else:
            self._cache.invalidate_account(account_id)

    def _changed(self, account_id: str) -> None:
        self.invalidate(account_id)

    async def _authenticate(
        self, kind: CredentialKind, digest: str, secret: str, client: str | None
    ) -> Account | None:
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        if client is not None:
            self._failures.check(client)
        account = None if digest in self._refused else await self._verify_once(kind, digest, secret)
        if account is None and client is not None:
            self._failures.record(client)
        return account

    async def _verify_once(self, kind: CredentialKind, digest: str, secret: str) -> Account | None:
        """One verification per digest at a time; concurrent callers wait for it and share its answer."""
        flight = self._flights.get(digest)
        if flight is None:
            flight = asyncio.ensure_future(self._verify(kind, digest, secret))
            self._flights[digest] = flight
            flight.add_done_callback(lambda done: self._landed(digest, done))
        # A caller that gives up (its client went away) leaves the verification running for the others.
        return await asyncio.shield(flight)

    def _landed(self, digest: str, flight: asyncio.Future[Account | None]) -> None:
        if self._flights.get(digest) is flight:
            del self._flights[digest]
        if not flight.cancelled():
            flight.exception()  # retrieved here, so an error no caller awaited is not reported as lost

    async def _verify(self, kind: CredentialKind, digest: str, secret: str) -> Account | None:
        generation = self._cache.generation
        earlier = self._cache.entry(digest)
        try:
            async with asyncio.timeout(self._lookup_timeout_s):
                match = await self._source.match_credential(kind=kind, digest=digest)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if earlier is not None:
                log.warning(
                    "control store unreachable; using an earlier verification", extra={"error": str(exc)}
                )
                return earlier.account
            raise CredentialStoreUnavailable(str(exc)) from exc
        if match is None:
            self._refused.add(digest)
            return None
        # The digest names the secret, so a stored hash this process already verified it against needs no scrypt.
        same_hash = earlier is not None and hmac.compare_digest(earlier.secret_hash, match.secret_hash)
        if not same_hash and not await asyncio.to_thread(verify_secret, secret, match.secret_hash):
            self._refused.add(digest)
            return None
        self._cache.put(digest, match.account, generation=generation, secret_hash=match.secret_hash)
        return match.account

"""Authenticating requests against the store, with in-process caches of verified and refused credentials."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from tapwire_core.control.accounts.cache import RefusedCredentialCache, VerifiedCredentialCache
from tapwire_core.control.accounts.failures import FailureLimit
from tapwire_core.control.accounts.hashing import MIN_SECRET_LENGTH, verify_secret
from tapwire_core.control.accounts.lookup import LookupDigests
from tapwire_core.control.accounts.types import Account, CredentialKind, CredentialMatch

log = logging.getLogger(__name__)


class CredentialStoreUnavailable(Exception):
    """The store could not be asked and no earlier verification of this credential is at hand."""


class CredentialSource(Protocol):
    """What the directory needs from the store (``ControlStore`` provides it)."""

    @property
    def lookup_digests(self) -> LookupDigests: ...

    async def match_credential(
        self, *, kind: CredentialKind, digests: Sequence[str]
    ) -> CredentialMatch | None:
        """The live credential stored under one of ``digests``. Raises SQLAlchemyError or OSError when the
        store is down."""
        ...

    async def rekey_credential(self, credential_id: int, *, stored_digest: str, digest: str) -> bool: ...

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
    - Caches are keyed by the current lookup digest. A credential still stored under an older digest (unkeyed, or
      keyed by an older credential secret) is found by the same query, and re-keyed once its secret verified if
      this process started at least ``rekey_after_s`` ago: until then, processes of the previous release (or with
      the previous credential secret), which find it only under its older digest, may still be serving.
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
        rekey_after_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._clock = clock
        self._rekey_from = clock() + rekey_after_s
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
        account = await self._authenticate("passcode", passcode, account_id, client)
        if account is None or not hmac.compare_digest(account.id.encode(), account_id.encode()):
            return None
        return account

    async def authenticate_write_key(self, write_key: str, *, client: str | None = None) -> Account | None:
        """The account holding ``write_key`` as a live write key, else None. Raises as ``authenticate_passcode``."""
        if not write_key:
            return None
        return await self._authenticate("write_key", write_key, None, client)

    def write_key_scope(self, write_key: str) -> bytes:
        """The write key's current lookup digest, as bytes: Segment message ids are deduplicated per write key
        under it, and being keyed it lets no stored event id confirm a guessed write key."""
        return bytes.fromhex(self._source.lookup_digests.current("write_key", write_key))

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
        self, kind: CredentialKind, secret: str, account_id: str | None, client: str | None
    ) -> Account | None:
        digest = self._source.lookup_digests.current(kind, secret, account_id=account_id)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        if client is not None:
            self._failures.check(client)
        account = (
            None
            if digest in self._refused
            else await self._verify_once(_Presented(kind, secret, account_id, digest))
        )
        if account is None and client is not None:
            self._failures.record(client)
        return account

    async def _verify_once(self, presented: _Presented) -> Account | None:
        """One verification per digest at a time; concurrent callers wait for it and share its answer."""
        digest = presented.digest
        flight = self._flights.get(digest)
        if flight is None:
            flight = asyncio.ensure_future(self._verify(presented))
            self._flights[digest] = flight
            flight.add_done_callback(lambda done: self._landed(digest, done))
        # A caller that gives up (its client went away) leaves the verification running for the others.
        return await asyncio.shield(flight)

    def _landed(self, digest: str, flight: asyncio.Future[Account | None]) -> None:
        if self._flights.get(digest) is flight:
            del self._flights[digest]
        if not flight.cancelled():
            flight.exception()  # retrieved here, so an error no caller awaited is not reported as lost

    async def _verify(self, presented: _Presented) -> Account | None:
        digest = presented.digest
        generation = self._cache.generation
        earlier = self._cache.entry(digest)
        candidates = self._source.lookup_digests.candidates(
            presented.kind, presented.secret, account_id=presented.account_id
        )
        try:
            async with asyncio.timeout(self._lookup_timeout_s):
                match = await self._source.match_credential(
                    kind=presented.kind, digests=[c.value for c in candidates]
                )
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
        if not same_hash and not await asyncio.to_thread(verify_secret, presented.secret, match.secret_hash):
            self._refused.add(digest)
            return None
        if match.lookup_digest != digest and self._clock() >= self._rekey_from:
            await self._rekey(match, digest)
        if not same_hash and len(presented.secret) < MIN_SECRET_LENGTH:
            # Issued before secrets had a minimum length; it works until replaced, but the operator must know.
            log.warning(
                "a credential shorter than the minimum length is in use; issue a new one and revoke it",
                extra={"credential_id": match.credential_id, "account_id": match.account.id},
            )
        self._cache.put(digest, match.account, generation=generation, secret_hash=match.secret_hash)
        return match.account

    async def _rekey(self, match: CredentialMatch, digest: str) -> None:
        """Move a just-verified credential to its current digest. Best effort: the request is authenticated
        either way, and the next verification in any process tries again."""
        try:
            async with asyncio.timeout(self._lookup_timeout_s):
                await self._source.rekey_credential(
                    match.credential_id, stored_digest=match.lookup_digest, digest=digest
                )
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning(
                "could not re-key a credential's lookup digest; will retry at its next verification",
                extra={"credential_id": match.credential_id, "error": str(exc)},
            )


@dataclass(frozen=True)
class _Presented:
    """A secret a client presented, and the current lookup digest it is cached under."""

    kind: CredentialKind
    secret: str = field(repr=False)
    account_id: str | None
    digest: str

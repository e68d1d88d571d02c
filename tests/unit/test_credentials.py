"""Secret hashing, the verified-credential cache and the directory's use of it, on an in-memory source."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from types import MappingProxyType

import pytest

from tapwire_core.control.accounts import Account, AccountDirectory
from tapwire_core.control.accounts.cache import VerifiedCredentialCache
from tapwire_core.control.accounts.hashing import generate_secret, hash_secret, verify_secret
from tapwire_core.control.accounts.lookup import LookupDigests, legacy_digest
from tapwire_core.control.accounts.types import CredentialKind, CredentialMatch

ACME = Account(id="ACC-1", name="Acme", region="eu1", settings=MappingProxyType({}))
OTHER = Account(id="ACC-2", name="Other", region="us1", settings=MappingProxyType({}))
DIGESTS = LookupDigests(["unit-test-credential-secret-0123456789"])


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class InMemorySource:
    """Credentials by lookup digest, as the store would hold them; counts lookups and re-keyings."""

    def __init__(self, digests: LookupDigests = DIGESTS) -> None:
        self.lookup_digests = digests
        self.rows: dict[tuple[CredentialKind, str], CredentialMatch] = {}
        self.lookups = 0
        self.rekeyed: list[int] = []
        self.listeners: list[Callable[[str], None]] = []
        self.during_lookup: Callable[[], None] | None = None
        self._next_id = 1

    def add(self, kind: CredentialKind, account: Account, secret: str, *, digest: str | None = None) -> int:
        """A credential stored under ``digest`` (default: its current one)."""
        digest = digest or self.lookup_digests.current(kind, secret, account_id=account.id)
        self.rows[(kind, digest)] = CredentialMatch(self._next_id, account, hash_secret(secret), digest)
        self._next_id += 1
        return self._next_id - 1

    def revoke(self, credential_id: int) -> None:
        for key, match in list(self.rows.items()):
            if match.credential_id == credential_id:
                del self.rows[key]
                for listener in self.listeners:
                    listener(match.account.id)

    async def match_credential(
        self, *, kind: CredentialKind, digests: Sequence[str]
    ) -> CredentialMatch | None:
        self.lookups += 1
        if self.during_lookup is not None:
            self.during_lookup()
        await asyncio.sleep(0)
        return next((self.rows[(kind, d)] for d in digests if (kind, d) in self.rows), None)

    async def rekey_credential(self, credential_id: int, *, stored_digest: str, digest: str) -> bool:
        for (kind, stored), match in list(self.rows.items()):
            if match.credential_id == credential_id and stored == stored_digest:
                del self.rows[(kind, stored)]
                self.rows[(kind, digest)] = CredentialMatch(
                    credential_id, match.account, match.secret_hash, digest
                )
                self.rekeyed.append(credential_id)
                return True
        return False

    def add_credentials_listener(self, listener: Callable[[str], None]) -> None:
        self.listeners.append(listener)


# Hashing.


def test_hash_verifies_its_secret_only() -> None:
    encoded = hash_secret("s3cret-passcode")
    assert encoded.startswith("scrypt$14$8$1$")
    assert "s3cret-passcode" not in encoded
    assert verify_secret("s3cret-passcode", encoded)
    assert not verify_secret("s3cret-passcodf", encoded)
    assert not verify_secret("", encoded)


def test_hashes_are_salted() -> None:
    assert hash_secret("same") != hash_secret("same")


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "scrypt",
        "bcrypt$14$8$1$AAAA$AAAA",
        "scrypt$x$8$1$AAAA$AAAA",
        "scrypt$30$8$1$AAAA$AAAA",
        "scrypt$14$8$1$!!$AAAA",
    ],
)
def test_malformed_hashes_verify_nothing(encoded: str) -> None:
    assert not verify_secret("anything", encoded)


def test_passcode_digests_are_scoped_to_their_account() -> None:
    def passcode(account_id: str, secret: str) -> str:
        return DIGESTS.current("passcode", secret, account_id=account_id)

    assert passcode("ACC-1", "pc") != passcode("ACC-2", "pc")
    # Length prefixes: moving characters between account id and secret never yields the same digest.
    assert passcode("AB", "C") != passcode("A", "BC")
    assert passcode("ACC-1", "pc") != DIGESTS.current("write_key", "pc")
    assert DIGESTS.current("write_key", "wk") == DIGESTS.current("write_key", "wk", account_id="ignored")
    assert len(DIGESTS.current("write_key", "wk")) == 64


def test_generated_secrets_are_long_random_and_alphanumeric() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) == 32 and s.isalnum() and s.isascii() for s in secrets)


# The cache.


def test_cache_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    cache = VerifiedCredentialCache(ttl_s=60.0, clock=clock)
    cache.put("d1", ACME, generation=cache.generation)
    clock.now = 59.9
    assert cache.get("d1") == ACME
    clock.now = 60.0
    assert cache.get("d1") is None
    assert len(cache) == 0


def test_cache_evicts_the_least_recently_used() -> None:
    cache = VerifiedCredentialCache(max_entries=2)
    cache.put("d1", ACME, generation=0)
    cache.put("d2", ACME, generation=0)
    assert cache.get("d1") == ACME
    cache.put("d3", OTHER, generation=0)
    assert (cache.get("d1"), cache.get("d2"), cache.get("d3")) == (ACME, None, OTHER)


def test_cache_invalidation_is_per_account_and_refuses_stale_puts() -> None:
    cache = VerifiedCredentialCache()
    cache.put("d1", ACME, generation=0)
    cache.put("d2", OTHER, generation=0)
    read_before = cache.generation
    cache.invalidate_account("ACC-1")
    assert (cache.get("d1"), cache.get("d2")) == (None, OTHER)
    cache.put("d3", ACME, generation=read_before)
    assert cache.get("d3") is None
    cache.clear()
    assert len(cache) == 0


def test_cache_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        VerifiedCredentialCache(max_entries=0)
    with pytest.raises(ValueError):
        VerifiedCredentialCache(ttl_s=0)


# The directory.


async def test_directory_verifies_once_then_answers_from_the_cache() -> None:
    source = InMemorySource()
    source.add("passcode", ACME, "pc-1")
    directory = AccountDirectory(source)
    assert await directory.authenticate_passcode("ACC-1", "pc-1") == ACME
    assert await directory.authenticate_passcode("ACC-1", "pc-1") == ACME
    assert source.lookups == 1


async def test_directory_keeps_failures_out_of_the_verified_cache() -> None:
    clock = FakeClock()
    source = InMemorySource()
    source.add("passcode", ACME, "pc-1")
    directory = AccountDirectory(source, refused_ttl_s=10.0, clock=clock)
    assert await directory.authenticate_passcode("ACC-1", "wrong") is None
    assert await directory.authenticate_passcode("ACC-2", "pc-1") is None
    assert directory.cached_entries == 0
    source.add("passcode", ACME, "wrong")  # made by another process: no notice reaches this one
    clock.now = 10.0  # the refusal is remembered only briefly
    assert await directory.authenticate_passcode("ACC-1", "wrong") == ACME


async def test_directory_rejects_a_digest_match_whose_hash_disagrees() -> None:
    source = InMemorySource()
    digest = DIGESTS.current("write_key", "wk-1")
    source.rows[("write_key", digest)] = CredentialMatch(1, ACME, hash_secret("something else"), digest)
    directory = AccountDirectory(source)
    assert await directory.authenticate_write_key("wk-1") is None
    assert directory.cached_entries == 0


async def test_directory_drops_an_account_on_revocation() -> None:
    source = InMemorySource()
    revoked = source.add("write_key", ACME, "wk-1")
    source.add("write_key", OTHER, "wk-2")
    directory = AccountDirectory(source)
    assert await directory.authenticate_write_key("wk-1") == ACME
    assert await directory.authenticate_write_key("wk-2") == OTHER
    source.revoke(revoked)
    assert await directory.authenticate_write_key("wk-1") is None
    assert directory.cached_entries == 1


async def test_directory_does_not_cache_a_lookup_that_raced_a_revocation() -> None:
    source = InMemorySource()
    credential = source.add("write_key", ACME, "wk-1")
    directory = AccountDirectory(source)
    match = source.rows[("write_key", DIGESTS.current("write_key", "wk-1"))]

    def revoke_mid_lookup() -> None:
        # The row was read just before the revocation committed: the answer is stale and must not be kept.
        source.revoke(credential)
        source.rows[("write_key", DIGESTS.current("write_key", "wk-1"))] = match
        source.during_lookup = None

    source.during_lookup = revoke_mid_lookup
    assert await directory.authenticate_write_key("wk-1") == ACME
    assert directory.cached_entries == 0


async def test_directory_invalidate_forces_a_fresh_lookup() -> None:
    source = InMemorySource()
    source.add("passcode", ACME, "pc-1")
    directory = AccountDirectory(source)
    await directory.authenticate_passcode("ACC-1", "pc-1")
    directory.invalidate("ACC-1")
    await directory.authenticate_passcode("ACC-1", "pc-1")
    directory.invalidate()
    await directory.authenticate_passcode("ACC-1", "pc-1")
    assert source.lookups == 3


async def test_directory_ignores_empty_input_without_a_lookup() -> None:
    directory = AccountDirectory(InMemorySource())
    assert await directory.authenticate_passcode("", "pc") is None
    assert await directory.authenticate_passcode("ACC-1", "") is None
    assert await directory.authenticate_write_key("") is None


async def test_directory_re_keys_a_credential_found_under_its_unkeyed_digest() -> None:
    source = InMemorySource()
    legacy = legacy_digest("passcode", "pc-legacy-0123456789", account_id="ACC-1")
    credential = source.add("passcode", ACME, "pc-legacy-0123456789", digest=legacy)
    clock = FakeClock()
    directory = AccountDirectory(source, rekey_after_s=3600.0, clock=clock)
    # While processes of the previous release may still serve, the credential stays where they look it up.
    assert await directory.authenticate_passcode("ACC-1", "pc-legacy-0123456789") == ACME
    assert source.rekeyed == [] and set(source.rows) == {("passcode", legacy)}
    clock.now = 3600.0  # the cached verification expired long ago; the next one re-keys
    assert await directory.authenticate_passcode("ACC-1", "pc-legacy-0123456789") == ACME
    assert source.rekeyed == [credential]
    current = DIGESTS.current("passcode", "pc-legacy-0123456789", account_id="ACC-1")
    assert set(source.rows) == {("passcode", current)}
    # Another process now finds it under the keyed digest and leaves it be.
    assert await AccountDirectory(source).authenticate_passcode("ACC-1", "pc-legacy-0123456789") == ACME
    assert source.rekeyed == [credential]


async def test_a_failed_re_key_still_authenticates(caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy.exc import OperationalError

    class ReadOnly(InMemorySource):
        async def rekey_credential(self, credential_id: int, *, stored_digest: str, digest: str) -> bool:
            raise OperationalError("UPDATE", {}, ConnectionRefusedError("read-only standby"))

    source = ReadOnly()
    source.add(
        "write_key", ACME, "wk-legacy-0123456789", digest=legacy_digest("write_key", "wk-legacy-0123456789")
    )
    assert (
        await AccountDirectory(source, rekey_after_s=0).authenticate_write_key("wk-legacy-0123456789") == ACME
    )
    assert "re-key" in caplog.text


async def test_a_short_credential_from_before_the_minimum_works_but_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = InMemorySource()
    source.add("passcode", ACME, "pc-1", digest=legacy_digest("passcode", "pc-1", account_id="ACC-1"))
    assert await AccountDirectory(source).authenticate_passcode("ACC-1", "pc-1") == ACME
    assert "shorter than the minimum length" in caplog.text
    assert "pc-1" not in caplog.text

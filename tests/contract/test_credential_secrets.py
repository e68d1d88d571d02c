"""Weak secrets and keyed lookup digests, on SQLite and PostgreSQL: no short passcode or write key gets in, a copy
of the credentials table is no use without ``TAPWIRE_CREDENTIAL_SECRET``, and credentials stored by an earlier
release (unkeyed digests) keep working and are re-keyed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tapwire_core.control import migrate
from tapwire_core.control.accounts import AccountDirectory
from tapwire_core.control.accounts.hashing import hash_secret
from tapwire_core.control.accounts.lookup import LookupDigests, legacy_digest
from tapwire_core.control.accounts.types import CredentialKind, WeakSecretError
from tapwire_core.control.bootstrap import bootstrap_accounts
from tapwire_core.control.store import ControlStore
from tests.credentials import CREDENTIAL_SECRET, LOOKUP_DIGESTS

pytestmark = pytest.mark.integration

PASSCODE = "PC-legacy-5d0e2b9a41c7"
WRITE_KEY = "WK-legacy-0f6c3e8d27b4"
NEWER_SECRET = "tests-newer-credential-secret-9876543210"
# The last revision whose credentials carry unkeyed digests.
BEFORE_KEYED_DIGESTS = "0009_query_jobs"


async def _credential_rows(store: ControlStore) -> list[tuple[int, str, str | None, bool]]:
    """(id, lookup digest, digest secret id, live) of every credential, by id."""
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT id, lookup_digest, digest_secret_id, revoked_at IS NULL FROM credentials ORDER BY id"
            )
        )
        return [(row[0], row[1], row[2], bool(row[3])) for row in rows]


# Short secrets.


@pytest.mark.parametrize("short", ["x", "PC-second", "fifteen-chars-x"])
async def test_secrets_under_16_characters_are_refused_everywhere(store: ControlStore, short: str) -> None:
    assert len(short) < 16
    with pytest.raises(WeakSecretError, match="passcode must be at least 16 characters"):
        await store.upsert_account("ACC-1", passcode=short, write_key=WRITE_KEY, region="eu1")
    with pytest.raises(WeakSecretError, match="write key must be at least 16 characters"):
        await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=short, region="eu1")
    assert await store.get_account("ACC-1") is None

    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    with pytest.raises(WeakSecretError, match="passcode must be at least 16 characters"):
        await store.add_passcode("ACC-1", short)
    with pytest.raises(WeakSecretError, match="write key must be at least 16 characters"):
        await store.add_credential("ACC-1", "write_key", short)
    live = [c for c in await store.list_credentials("ACC-1") if c.live]
    assert len(live) == 2


async def test_sixteen_characters_are_enough_and_generated_secrets_have_32(store: ControlStore) -> None:
    await store.upsert_account("ACC-1", passcode="p" * 16, write_key="w" * 16, region="eu1")
    generated = await store.add_credential("ACC-1", "write_key")
    assert len(generated.secret) >= 32
    directory = AccountDirectory(store)
    assert await directory.authenticate_passcode("ACC-1", "p" * 16) is not None
    assert await directory.authenticate_write_key(generated.secret) is not None


async def test_short_secrets_in_tapwire_accounts_stop_the_start_naming_the_account(
    store: ControlStore,
) -> None:
    from tapwire_core.control.bootstrap import AccountsConfigError

    with pytest.raises(AccountsConfigError) as raised:
        await bootstrap_accounts(
            store,
            accounts=f"ACC-1:{PASSCODE}:{WRITE_KEY},ACC-2:short:{WRITE_KEY}x",
            region="eu1",
            embedded=False,
        )
    assert "account ACC-2" in str(raised.value) and "shorter than 16 characters" in str(raised.value)
    assert "short" not in str(raised.value).replace("shorter", "")
    assert await store.list_accounts() == []  # refused before anything was written


# Keyed digests.


async def test_stored_digests_cannot_be_computed_without_the_credential_secret(store: ControlStore) -> None:
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    stored = {digest for _, digest, _, _ in await _credential_rows(store)}
    # Everything computable from the secret alone: what earlier releases stored.
    unkeyed = {
        legacy_digest("passcode", PASSCODE, account_id="ACC-1"),
        legacy_digest("write_key", WRITE_KEY),
    }
    assert not stored & unkeyed
    assert stored == {
        LOOKUP_DIGESTS.current("passcode", PASSCODE, account_id="ACC-1"),
        LOOKUP_DIGESTS.current("write_key", WRITE_KEY),
    }
    # And another deployment's secret computes other digests: the table alone confirms no guess.
    elsewhere = LookupDigests(["another-deployments-credential-secret-0"])
    assert elsewhere.current("write_key", WRITE_KEY) not in stored


async def test_a_store_keyed_by_another_secret_finds_nothing(store: ControlStore, store_url: str) -> None:
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    async with ControlStore(
        store_url, lookup_digests=LookupDigests(["another-deployments-credential-secret-0"])
    ) as other:
        directory = AccountDirectory(other)
        assert await directory.authenticate_write_key(WRITE_KEY) is None
        assert await directory.authenticate_passcode("ACC-1", PASSCODE) is None


async def test_credentials_need_the_credential_secret(store_url: str) -> None:
    from tapwire_core.control.accounts.lookup import CredentialSecretError

    async with ControlStore(store_url) as without:
        with pytest.raises(CredentialSecretError, match="TAPWIRE_CREDENTIAL_SECRET"):
            await without.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")


# Credentials stored by an earlier release.


async def _store_as_before_keyed_digests(store: ControlStore) -> dict[str, int]:
    """Step the schema back to the last unkeyed revision and write credentials the way that release did:
    an unkeyed SHA-256 lookup digest beside the scrypt hash. Returns credential ids by name."""
    rows: list[tuple[str, CredentialKind, str, str | None, bool]] = [
        ("passcode", "passcode", PASSCODE, "ACC-1", True),
        ("write_key", "write_key", WRITE_KEY, None, True),
        ("revoked", "passcode", "PC-revoked-long-enough", "ACC-1", False),
    ]
    ids: dict[str, int] = {}
    async with store.engine.begin() as connection:
        await connection.run_sync(migrate.downgrade_to, BEFORE_KEYED_DIGESTS)
        await connection.execute(
            text("INSERT INTO accounts (id, name, region) VALUES ('ACC-1', 'Acme', 'eu1')")
        )
        for name, kind, secret, scope, live in rows:
            result = await connection.execute(
                text(
                    "INSERT INTO credentials (account_id, kind, secret_hash, lookup_digest, revoked_at)"
                    " VALUES ('ACC-1', :kind, :hash, :digest, CASE WHEN :live THEN NULL ELSE CURRENT_TIMESTAMP END)"
                    " RETURNING id"
                ),
                {
                    "kind": kind,
                    "hash": hash_secret(secret),
                    "digest": legacy_digest(kind, secret, account_id=scope),
                    "live": live,
                },
            )
            ids[name] = result.scalar_one()
        await connection.run_sync(migrate.upgrade_to_head)
    return ids


async def test_a_credential_of_the_unkeyed_release_authenticates_and_is_re_keyed(store: ControlStore) -> None:
    ids = await _store_as_before_keyed_digests(store)
    rows = {row[0]: row for row in await _credential_rows(store)}
    assert rows[ids["passcode"]][1:3] == (legacy_digest("passcode", PASSCODE, account_id="ACC-1"), None)
    # The upgrade could not re-key anything, but left no unkeyed digest on the revoked credential.
    assert rows[ids["revoked"]][1] == f"retired-{ids['revoked']}"
    assert await store.live_credentials_by_digest_secret() == {None: 2}

    # Re-keying waits for processes of the previous release to be gone; here there are none.
    directory = AccountDirectory(store, rekey_after_s=0)
    account = await directory.authenticate_passcode("ACC-1", PASSCODE)
    assert account is not None and account.id == "ACC-1"
    assert await directory.authenticate_write_key(WRITE_KEY) is not None
    assert await directory.authenticate_passcode("ACC-1", "PC-revoked-long-enough") is None

    rows = {row[0]: row for row in await _credential_rows(store)}
    current = LOOKUP_DIGESTS.current_secret_id
    assert rows[ids["passcode"]][1:] == (
        LOOKUP_DIGESTS.current("passcode", PASSCODE, account_id="ACC-1"),
        current,
        True,
    )
    assert rows[ids["write_key"]][1:] == (LOOKUP_DIGESTS.current("write_key", WRITE_KEY), current, True)
    assert await store.live_credentials_by_digest_secret() == {current: 2}
    # Found under the keyed digest from now on, by any process.
    assert await AccountDirectory(store).authenticate_passcode("ACC-1", PASSCODE) is not None


async def test_during_a_rollout_both_releases_find_the_credentials(store: ControlStore) -> None:
    """New pods start while old ones serve: re-applying ``TAPWIRE_ACCOUNTS`` and verifying within the grace
    period keep the unkeyed digests the old pods look up; the same credentials, nothing revoked or rehashed."""
    ids = await _store_as_before_keyed_digests(store)
    before = await _credential_rows(store)
    await bootstrap_accounts(store, accounts=f"ACC-1:{PASSCODE}:{WRITE_KEY}", region="eu1", embedded=False)
    assert await AccountDirectory(store).authenticate_passcode("ACC-1", PASSCODE) is not None
    assert await AccountDirectory(store).authenticate_write_key(WRITE_KEY) is not None
    assert await _credential_rows(store) == before
    async with store.engine.connect() as connection:
        old_release_finds = await connection.scalar(
            text("SELECT id FROM credentials WHERE lookup_digest = :digest AND revoked_at IS NULL"),
            {"digest": legacy_digest("write_key", WRITE_KEY)},
        )
    assert old_release_finds == ids["write_key"]


async def test_revoking_an_unkeyed_credential_retires_its_digest(store: ControlStore) -> None:
    ids = await _store_as_before_keyed_digests(store)
    assert await store.revoke_credential(ids["write_key"])
    rows = {row[0]: row for row in await _credential_rows(store)}
    assert rows[ids["write_key"]][1] == f"retired-{ids['write_key']}"
    assert await AccountDirectory(store).authenticate_write_key(WRITE_KEY) is None


# Rotating the credential secret.


async def test_a_rotated_secret_keeps_credentials_working_and_re_keys_them(
    store: ControlStore, store_url: str
) -> None:
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    rotated = LookupDigests([NEWER_SECRET, CREDENTIAL_SECRET])
    async with ControlStore(store_url, lookup_digests=rotated) as after:
        old_id = LOOKUP_DIGESTS.current_secret_id
        assert await after.live_credentials_by_digest_secret() == {old_id: 2}
        directory = AccountDirectory(after, rekey_after_s=0)
        assert await directory.authenticate_passcode("ACC-1", PASSCODE) is not None
        assert await after.live_credentials_by_digest_secret() == {old_id: 1, rotated.current_secret_id: 1}
        assert await directory.authenticate_write_key(WRITE_KEY) is not None
        assert await after.live_credentials_by_digest_secret() == {rotated.current_secret_id: 2}
    # Every credential moved: the old secret can leave the setting.
    async with ControlStore(store_url, lookup_digests=LookupDigests([NEWER_SECRET])) as later:
        assert await AccountDirectory(later).authenticate_write_key(WRITE_KEY) is not None

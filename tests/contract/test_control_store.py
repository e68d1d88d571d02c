"""One behaviour suite for the control store, run against SQLite (embedded) and PostgreSQL (distributed)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, inspect, select, text
from sqlalchemy.exc import IntegrityError

from tapwire_core.control import migrate
from tapwire_core.control.accounts import (
    AccountDirectory,
    AccountNotFoundError,
    CredentialConflictError,
)
from tapwire_core.control.bootstrap import (
    DEMO_ACCOUNT_ID,
    bootstrap_accounts,
    ensure_demo_account,
    reset_demo_credentials,
)
from tapwire_core.control.models import Base
from tapwire_core.control.store import ControlStore
from tests.credentials import LOOKUP_DIGESTS

pytestmark = pytest.mark.integration

PASSCODE = "PC-first-3f9d1c2a77b0"
WRITE_KEY = "WK-first-8e41aa0c9d22"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _dump_all_rows(store: ControlStore) -> list[tuple[str, dict[str, Any]]]:
    """Every row of every table in the database, whatever created it."""

    def dump(connection: Connection) -> list[tuple[str, dict[str, Any]]]:
        metadata = MetaData()
        metadata.reflect(connection)
        rows: list[tuple[str, dict[str, Any]]] = []
        for table in metadata.sorted_tables:
            rows.extend((table.name, dict(row._mapping)) for row in connection.execute(select(table)))
        return rows

    async with store.engine.connect() as connection:
        return await connection.run_sync(dump)


# Migrations.


async def test_migrations_reach_head_and_rerun_as_no_op(store: ControlStore, store_url: str) -> None:
    assert await store.current_revision() == store.migration_head() == migrate.head_revision()
    assert await store.is_current()
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")

    async with store.engine.begin() as connection:
        await connection.run_sync(migrate.upgrade_to_head)
    again = ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS)
    await again.start()
    try:
        assert await again.is_current()
        assert await again.get_account("ACC-1") is not None
    finally:
        await again.close()


async def test_migrations_step_down_and_up_again(store: ControlStore) -> None:
    async with store.engine.begin() as connection:
        await connection.run_sync(migrate.downgrade_to, "base")
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert not tables & {"accounts", "credentials"}
        await connection.run_sync(migrate.upgrade_to_head)
    assert await store.is_current()
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")


async def test_tables_created_by_migrations_match_the_models(store: ControlStore) -> None:
    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with store.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        checks = await connection.run_sync(lambda sync: inspect(sync).get_check_constraints("credentials"))
    assert {"accounts", "credentials", "alembic_version"} <= tables
    assert [c["name"] for c in checks] == ["ck_credentials_kind"]


async def test_the_database_enforces_credential_kinds(store: ControlStore) -> None:
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    with pytest.raises(IntegrityError):
        async with store.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO credentials (account_id, kind, secret_hash, lookup_digest)"
                    " VALUES (:account, :kind, :hash, :digest)"
                ),
                {"account": "ACC-1", "kind": "api_token", "hash": "x", "digest": "d" * 64},
            )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:p%40ss@db.internal/control", "settings JSONB DEFAULT '{}' NOT NULL"),
        ("sqlite:///control.db", "settings JSON DEFAULT '{}' NOT NULL"),
    ],
)
def test_upgrade_sql_is_printable_without_a_database(url: str, expected: str) -> None:
    sql = migrate.upgrade_sql(url)
    assert "CREATE TABLE credentials" in sql and expected in sql
    assert "CONSTRAINT ck_credentials_kind CHECK" in sql


async def test_ping_answers_while_started_only(store_url: str) -> None:
    control = ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS)
    assert not await control.ping()
    await control.start()
    assert await control.ping()
    await control.close()
    assert not await control.ping()


# Accounts.


async def test_upsert_creates_then_updates_in_place(store: ControlStore) -> None:
    created = await store.upsert_account(
        "948-4KK-444Z",
        passcode=PASSCODE,
        write_key=WRITE_KEY,
        region="eu1",
        settings={"upload_concurrency": 4},
    )
    assert (created.id, created.name, created.region) == ("948-4KK-444Z", "948-4KK-444Z", "eu1")
    assert dict(created.settings) == {"upload_concurrency": 4}
    assert await store.get_account("948-4KK-444Z") == created

    updated = await store.upsert_account(
        "948-4KK-444Z", passcode=PASSCODE, write_key=WRITE_KEY, region="in1", name="Shop"
    )
    assert (updated.name, updated.region, dict(updated.settings)) == (
        "Shop",
        "in1",
        {"upload_concurrency": 4},
    )
    assert await store.get_account("948-4KK-444Z") == updated
    assert await store.get_account("NOPE-000") is None
    assert [a.id for a in await store.list_accounts()] == ["948-4KK-444Z"]


async def test_returned_account_is_a_frozen_value(store: ControlStore) -> None:
    account = await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    with pytest.raises(AttributeError):
        account.region = "us1"  # type: ignore[misc]
    with pytest.raises(TypeError):
        account.settings["x"] = 1  # type: ignore[index]


async def test_reapplying_the_same_secrets_keeps_the_credentials(store: ControlStore) -> None:
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    before = await store.list_credentials("ACC-1")
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    assert await store.list_credentials("ACC-1") == before
    assert sorted(c.kind for c in before if c.live) == ["passcode", "write_key"]


async def test_upsert_replaces_credentials(store: ControlStore) -> None:
    directory = AccountDirectory(store)
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    assert await directory.authenticate_passcode("ACC-1", PASSCODE) is not None

    await store.upsert_account(
        "ACC-1", passcode="PC-second-5a0c7e21d4", write_key="WK-second-7f3b9d02e6", region="eu1"
    )
    assert await directory.authenticate_passcode("ACC-1", PASSCODE) is None
    assert await directory.authenticate_write_key(WRITE_KEY) is None
    assert await directory.authenticate_passcode("ACC-1", "PC-second-5a0c7e21d4") is not None
    assert await directory.authenticate_write_key("WK-second-7f3b9d02e6") is not None
    credentials = await store.list_credentials("ACC-1")
    assert [(c.kind, c.live) for c in credentials] == [
        ("passcode", False),
        ("write_key", False),
        ("passcode", True),
        ("write_key", True),
    ]

    # Going back to a retired secret brings its credential back rather than colliding with it.
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    assert await directory.authenticate_passcode("ACC-1", PASSCODE) is not None
    assert await directory.authenticate_passcode("ACC-1", "PC-second-5a0c7e21d4") is None


async def test_a_write_key_belongs_to_one_account(store: ControlStore) -> None:
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    with pytest.raises(CredentialConflictError) as raised:
        await store.upsert_account("ACC-2", passcode="PC-other-1c8e4b7a90", write_key=WRITE_KEY, region="eu1")
    assert WRITE_KEY not in str(raised.value)
    assert await store.get_account("ACC-2") is None  # the failed upsert left nothing behind


async def test_passcodes_may_repeat_across_accounts(store: ControlStore) -> None:
    directory = AccountDirectory(store)
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key="WK-1-0a4f9c27e3b1", region="eu1")
    await store.upsert_account("ACC-2", passcode=PASSCODE, write_key="WK-2-93d1b6f05c28", region="us1")
    one = await directory.authenticate_passcode("ACC-1", PASSCODE)
    two = await directory.authenticate_passcode("ACC-2", PASSCODE)
    assert one is not None and two is not None
    assert (one.id, two.id, two.region) == ("ACC-1", "ACC-2", "us1")


# Authentication.


async def test_authenticate_passcode(store: ControlStore) -> None:
    directory = AccountDirectory(store)
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    await store.upsert_account(
        "ACC-2", passcode="PC-of-acc-2-6d2e9f13", write_key="WK-2-93d1b6f05c28", region="eu1"
    )

    account = await directory.authenticate_passcode("ACC-1", PASSCODE)
    assert account is not None and account.id == "ACC-1"
    assert await directory.authenticate_passcode("ACC-1", PASSCODE + "x") is None
    assert await directory.authenticate_passcode("ACC-1", "PC-of-acc-2-6d2e9f13") is None
    assert await directory.authenticate_passcode("ACC-2", PASSCODE) is None
    assert await directory.authenticate_passcode("ACC-404", PASSCODE) is None
    assert await directory.authenticate_passcode("ACC-1", WRITE_KEY) is None
    assert await directory.authenticate_passcode("ACC-1", "") is None
    assert await directory.authenticate_passcode("", PASSCODE) is None


async def test_authenticate_write_key(store: ControlStore) -> None:
    directory = AccountDirectory(store)
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="sg1")
    account = await directory.authenticate_write_key(WRITE_KEY)
    assert account is not None and (account.id, account.region) == ("ACC-1", "sg1")
    assert await directory.authenticate_write_key(WRITE_KEY[:-1]) is None
    assert await directory.authenticate_write_key(PASSCODE) is None
    assert await directory.authenticate_write_key("") is None


async def test_revoked_credentials_stop_working(store: ControlStore) -> None:
    directory = AccountDirectory(store)
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    ids = {c.kind: c.id for c in await store.list_credentials("ACC-1")}

    assert await store.revoke_credential(ids["passcode"])
    assert await store.revoke_credential(ids["write_key"])
    assert not await store.revoke_credential(ids["passcode"])
    assert not await store.revoke_credential(999_999)
    assert await directory.authenticate_passcode("ACC-1", PASSCODE) is None
    assert await directory.authenticate_write_key(WRITE_KEY) is None
    assert all(c.revoked_at is not None for c in await store.list_credentials("ACC-1"))


async def test_several_passcodes(store: ControlStore) -> None:
    directory = AccountDirectory(store)
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    second = await store.add_passcode("ACC-1", "PC-second-passcode")
    generated = await store.add_passcode("ACC-1")
    assert len(generated.secret) >= 32

    for secret in (PASSCODE, second.secret, generated.secret):
        assert await directory.authenticate_passcode("ACC-1", secret) is not None
    assert await store.revoke_credential(second.id)
    assert await directory.authenticate_passcode("ACC-1", second.secret) is None
    assert await directory.authenticate_passcode("ACC-1", PASSCODE) is not None
    assert await directory.authenticate_passcode("ACC-1", generated.secret) is not None

    with pytest.raises(CredentialConflictError):
        await store.add_passcode("ACC-1", PASSCODE)
    with pytest.raises(AccountNotFoundError):
        await store.add_passcode("ACC-404")
    with pytest.raises(ValueError, match="passcode must be at least 16 characters"):
        await store.add_passcode("ACC-1", "")
    with pytest.raises(ValueError, match="write key must be at least 16 characters"):
        await store.upsert_account("ACC-1", passcode=PASSCODE, write_key="", region="eu1")
    with pytest.raises(ValueError, match="region 'eu9'"):
        await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu9")
    assert await directory.authenticate_write_key(WRITE_KEY) is not None


async def test_secrets_are_not_stored_in_plain_text(store: ControlStore, store_url: str) -> None:
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    extra = await store.add_passcode("ACC-1")
    await store.upsert_account(
        "ACC-1", passcode="PC-replacement-9b1e", write_key="WK-replacement-4c7d", region="eu1"
    )
    secrets = [PASSCODE, WRITE_KEY, extra.secret, "PC-replacement-9b1e", "WK-replacement-4c7d"]

    rows = await _dump_all_rows(store)
    assert {table for table, _ in rows} >= {"accounts", "credentials"}
    dumped = repr(rows)
    assert "ACC-1" in dumped  # the dump does see the data
    for secret in secrets:
        assert secret not in dumped
    if store_url.startswith("sqlite"):
        database = Path(store_url.split(":///", 1)[1])
        raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        assert b"ACC-1" in raw
        for secret in secrets:
            assert secret.encode() not in raw


# The verified-credential cache.


async def test_cache_serves_repeats_and_honours_revocation(store: ControlStore) -> None:
    directory = AccountDirectory(store)
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    extra = await store.add_passcode("ACC-1")
    assert await directory.authenticate_passcode("ACC-1", PASSCODE) is not None
    assert await directory.authenticate_passcode("ACC-1", extra.secret) is not None
    assert await directory.authenticate_write_key(WRITE_KEY) is not None
    assert directory.cached_entries == 3

    assert await store.revoke_credential(extra.id)
    assert await directory.authenticate_passcode("ACC-1", extra.secret) is None
    assert await directory.authenticate_passcode("ACC-1", PASSCODE) is not None
    assert await directory.authenticate_write_key(WRITE_KEY) is not None


async def test_cache_follows_region_changes(store: ControlStore) -> None:
    directory = AccountDirectory(store)
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    assert (await directory.authenticate_write_key(WRITE_KEY)) is not None
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="us1")
    account = await directory.authenticate_write_key(WRITE_KEY)
    assert account is not None and account.region == "us1"


async def test_revocation_by_another_process_is_seen_within_the_ttl(
    store: ControlStore, store_url: str
) -> None:
    clock = FakeClock()
    directory = AccountDirectory(store, ttl_s=60.0, clock=clock)
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key=WRITE_KEY, region="eu1")
    assert await directory.authenticate_write_key(WRITE_KEY) is not None

    other = ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS)
    await other.start()
    try:
        ids = {c.kind: c.id for c in await other.list_credentials("ACC-1")}
        assert await other.revoke_credential(ids["write_key"])
    finally:
        await other.close()
    clock.now += 59.0
    assert await directory.authenticate_write_key(WRITE_KEY) is not None  # still within the cache's TTL
    clock.now += 1.0
    assert await directory.authenticate_write_key(WRITE_KEY) is None


# Start-up accounts.


async def test_replicas_applying_the_same_accounts_at_once_all_start(
    store: ControlStore, store_url: str
) -> None:
    """Gateway replicas start together and each applies ``TAPWIRE_ACCOUNTS``: none may fail on another's
    insert of the same account or credential (PostgreSQL writers queue on an advisory lock; SQLite ones,
    from separate processes, only on the database's own write lock)."""
    others = [ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS) for _ in range(3)]
    for other in others:
        await other.start()
    try:
        accounts = f"ACC-1:{PASSCODE}:{WRITE_KEY}:eu1"
        results = await asyncio.gather(
            *(
                bootstrap_accounts(s, accounts=accounts, region="eu1", embedded=False)
                for s in (store, *others)
            )
        )
    finally:
        for other in others:
            await other.close()
    assert [result.applied for result in results] == [("ACC-1",)] * 4
    live = [c.kind for c in await store.list_credentials("ACC-1") if c.revoked_at is None]
    assert sorted(live) == ["passcode", "write_key"]


async def test_demo_account_is_created_once(store: ControlStore) -> None:
    first = await bootstrap_accounts(store, accounts=None, region="in1", embedded=True)
    assert first.demo_credentials is not None and first.demo_account is not None
    creds = first.demo_credentials
    assert (creds.account_id, creds.region) == (DEMO_ACCOUNT_ID, "in1")
    assert any(creds.passcode in line for line in first.announcement())

    later = await bootstrap_accounts(store, accounts=None, region="in1", embedded=True)
    assert later.demo_credentials is None and later.demo_account == first.demo_account
    assert not any(creds.passcode in line for line in later.announcement())
    assert any("reset-demo" in line for line in later.announcement())

    directory = AccountDirectory(store)
    assert await directory.authenticate_passcode(DEMO_ACCOUNT_ID, creds.passcode) is not None
    assert await directory.authenticate_write_key(creds.write_key) is not None


async def test_reset_demo_credentials_retires_the_old_ones(store: ControlStore) -> None:
    directory = AccountDirectory(store)
    _, original = await ensure_demo_account(store, region="eu1")
    assert original is not None
    reset = await reset_demo_credentials(store, region="us1")
    assert reset.region == "eu1"  # an existing demo account keeps its home
    assert reset.passcode != original.passcode and reset.write_key != original.write_key
    assert await directory.authenticate_passcode(DEMO_ACCOUNT_ID, original.passcode) is None
    assert await directory.authenticate_write_key(original.write_key) is None
    assert await directory.authenticate_passcode(DEMO_ACCOUNT_ID, reset.passcode) is not None
    assert await directory.authenticate_write_key(reset.write_key) is not None


async def test_accounts_from_the_environment_replace_the_demo(store: ControlStore) -> None:
    result = await bootstrap_accounts(
        store,
        accounts=f"ACC-1:{PASSCODE}:{WRITE_KEY},ACC-2:PC-2-4e8a1d7c95b3:WK-2-93d1b6f05c28:us1",
        region="eu1",
        embedded=True,
    )
    assert result.applied == ("ACC-1", "ACC-2") and result.demo_credentials is None
    assert await store.get_account(DEMO_ACCOUNT_ID) is None
    assert [(a.id, a.region) for a in await store.list_accounts()] == [("ACC-1", "eu1"), ("ACC-2", "us1")]
    assert not (await bootstrap_accounts(store, accounts=None, region="eu1", embedded=False)).announcement()


async def test_migrations_tolerate_concurrent_starts(store_url: str) -> None:
    """Services booting together on a fresh database: one migrates, the others wait and find it current
    (PostgreSQL queues them on an advisory lock, SQLite on its write lock)."""
    stores = [ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS) for _ in range(3)]
    try:
        await asyncio.gather(*(s.start() for s in stores))
        assert all([await s.is_current() for s in stores])
        async with stores[0].engine.connect() as connection:
            versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [v[0] for v in versions] == [migrate.head_revision()]
    finally:
        for s in stores:
            await s.close()


async def test_stores_of_different_databases_start_together_in_one_process(
    store_url: str, tmp_path: Path
) -> None:
    """No database lock orders two upgrades of different databases, yet Alembic's migration context is
    process-wide: they must still take turns rather than run each other's steps."""
    stores = [
        ControlStore(store_url),
        *(ControlStore(f"sqlite:///{tmp_path / f'other-{i}.db'}") for i in range(2)),
    ]
    try:
        await asyncio.gather(*(s.start() for s in stores))
        assert all([await s.is_current() for s in stores])
    finally:
        for s in stores:
            await s.close()


async def test_sqlite_start_waits_for_a_writer_on_a_fresh_file(tmp_path: Path) -> None:
    """A connection writing to a fresh file in rollback-journal mode makes SQLite refuse the switch to WAL at
    once (no busy wait): the start must wait for it rather than fail with "database is locked"."""
    path = tmp_path / "control.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    store = ControlStore(f"sqlite:///{path}")
    try:
        starting = asyncio.create_task(store.start())
        await asyncio.sleep(0.3)
        assert not starting.done()
        writer.execute("COMMIT")
        await starting
        assert await store.is_current()
        async with store.engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        writer.close()
        await store.close()

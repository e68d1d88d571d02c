"""After a restore: back up, erase, restore (the subject is back), reapply from the erasure ledger, residue 0.

The ClickHouse restore is the tables' contents put back as they were at the backup (copied inside ClickHouse);
the control database's is SQLite's online backup written back over the live file, which also takes the control
database's copy of the ledger back to before the erasure: the warehouse's copy then carries it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging import consent
from tapwire_core.control.messaging.models import ConsentRow
from tapwire_core.control.privacy.ledger_models import ErasureLedgerRow
from tapwire_core.warehouse import Warehouse, schema
from tapwire_privacy.ledger import ErasureLedger
from tapwire_privacy.reapply import reapply
from tests.privacy.conftest import Rig
from tests.privacy.seed import rows_naming
from tests.privacy.test_erasure import ALICE, BOB, erase, seed_alice_and_bob

pytestmark = pytest.mark.integration

# Every table a ClickHouse backup holds, the ledger's warehouse copy included (the control database's copy then
# carries the erasure).
TABLES = (
    schema.EVENTS,
    schema.PROFILES,
    schema.PROFILE_PROPS,
    schema.PROFILE_OPS,
    schema.USER_ALIASES,
    schema.ERASURE_LEDGER,
)


async def _back_up_warehouse(warehouse: Warehouse) -> None:
    for table in TABLES:
        await warehouse.command(f"CREATE TABLE backup_{table} AS {table}")
        await warehouse.command(f"INSERT INTO backup_{table} SELECT * FROM {table}")


async def _restore_warehouse(warehouse: Warehouse) -> None:
    for table in TABLES:
        await warehouse.command(f"TRUNCATE TABLE {table}")
        await warehouse.command(f"INSERT INTO {table} SELECT * FROM backup_{table}")
        await warehouse.command(f"DROP TABLE backup_{table}")


def _database(rig: Rig) -> Path:
    return Path(str(rig.control.engine.url.database))


def _copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


async def _reapply(rig: Rig) -> list[str]:
    done = await reapply(
        ledger=ErasureLedger(rig.control.engine, rig.warehouse),
        repository=rig.repository,
        warehouse=rig.warehouse,
        engine=rig.control.engine,
    )
    return done.requests


async def _erase_alice(rig: Rig) -> None:
    request_id = await erase(rig.repository, "e:alice@example.com")
    await rig.run_until_settled()
    assert (await rig.repository.requests.get(request_id)).status == "completed"
    assert sum((await rows_naming(rig.warehouse, "ACC-1", ALICE)).values()) == 0


async def test_a_restored_warehouse_is_erased_again_from_the_ledger(rig: Rig) -> None:
    await seed_alice_and_bob(rig.warehouse)
    bob = await rows_naming(rig.warehouse, "ACC-1", BOB)
    await _back_up_warehouse(rig.warehouse)
    await _erase_alice(rig)

    # The ledger names what was erased without naming anyone.
    async with AsyncSession(rig.control.engine) as session:
        kept = list(await session.scalars(select(ErasureLedgerRow)))
    warehouse_copy = await rig.warehouse.query(f"SELECT * FROM {schema.ERASURE_LEDGER} FINAL")
    assert len(kept) == len(warehouse_copy) >= 5
    stored = repr([(r.account_id, r.key_hash, r.request_id) for r in kept]) + repr(warehouse_copy)
    assert not any(needle in stored for needle in ALICE)

    await _restore_warehouse(rig.warehouse)
    assert (
        sum((await rows_naming(rig.warehouse, "ACC-1", ALICE)).values()) > 0
    )  # the restore brought her back
    assert await rig.warehouse.query(f"SELECT * FROM {schema.ERASURE_LEDGER}") == []

    queued = await _reapply(rig)
    assert len(queued) == 1
    await rig.run_until_settled()
    assert (await rig.repository.requests.get(queued[0])).status == "completed"
    assert sum((await rows_naming(rig.warehouse, "ACC-1", ALICE)).values()) == 0
    assert await rows_naming(rig.warehouse, "ACC-1", BOB) == bob
    assert sum((await rows_naming(rig.warehouse, "ACC-2", ["alice"])).values()) > 0
    assert await _reapply(rig) == []  # nothing of the ledger is left to erase


async def test_a_restored_control_database_is_erased_again_from_the_warehouses_ledger(
    rig: Rig, tmp_path: Path
) -> None:
    await seed_alice_and_bob(rig.warehouse)
    for subject in ("alice@example.com", "bob@example.com"):
        await consent.set_consent(
            rig.control.engine,
            account_id="ACC-1",
            kind="email",
            subject=subject,
            channel="email",
            state="subscribed",
            source="api",
            now_ms=1,
        )
    await rig.repository.secrets.identifier_salt()  # the deployment's salt predates the backup
    backup = tmp_path / "control-backup.db"
    _copy(_database(rig), backup)
    await _erase_alice(rig)

    _copy(backup, _database(rig))
    async with AsyncSession(rig.control.engine) as session:
        assert list(await session.scalars(select(ErasureLedgerRow))) == []  # restored to before the erasure
        subjects = [r.subject for r in await session.scalars(select(ConsentRow))]
    assert "alice@example.com" in subjects  # and alice's consent row is back

    queued = await _reapply(rig)
    assert len(queued) == 1
    await rig.run_until_settled()
    async with AsyncSession(rig.control.engine) as session:
        subjects = [r.subject for r in await session.scalars(select(ConsentRow))]
    assert subjects == ["bob@example.com"]
    assert await _reapply(rig) == []


async def test_a_restored_account_erased_whole_is_erased_whole_again(rig: Rig) -> None:
    await seed_alice_and_bob(rig.warehouse)
    await _back_up_warehouse(rig.warehouse)
    view = await rig.repository.requests.create(
        account_id="ACC-1", type="erasure", scope="tenant", channel="api", jurisdiction="gdpr", keys=[]
    )
    await rig.run_until_settled()
    assert (await rig.repository.requests.get(view.id)).status == "completed"
    assert sum((await rows_naming(rig.warehouse, "ACC-1", [*ALICE, *BOB])).values()) == 0

    await _restore_warehouse(rig.warehouse)
    assert sum((await rows_naming(rig.warehouse, "ACC-1", BOB)).values()) > 0

    queued = await _reapply(rig)
    assert len(queued) == 1
    again = await rig.repository.requests.get(queued[0])
    assert again.scope == "tenant" and again.type == "erasure"
    await rig.run_until_settled()
    assert sum((await rows_naming(rig.warehouse, "ACC-1", [*ALICE, *BOB])).values()) == 0
    assert sum((await rows_naming(rig.warehouse, "ACC-2", ["alice"])).values()) > 0
    assert await _reapply(rig) == []

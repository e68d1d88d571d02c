"""``tapwire privacy reapply`` as an operator runs it after a restore: ClickHouse over HTTP (the rig), the
control database under ``TAPWIRE_DATA_DIR``."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tapwire_core.clock import system_clock
from tapwire_core.control.privacy.models import PrivacyRequestRow
from tapwire_core.control.privacy.subject_keys import key_hash
from tapwire_core.control.store import ControlStore
from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_privacy.ledger import ErasureLedger, LedgerEntry
from tapwire_privacy.repository import PrivacyRepository
from tests.privacy.seed import event, write

pytestmark = pytest.mark.integration


@pytest.fixture
async def warehouse(clickhouse_database_url: str) -> AsyncIterator[ClickHouseWarehouse]:
    opened = ClickHouseWarehouse(clickhouse_database_url)
    await opened.start()
    await migrate(opened, cluster=None)
    try:
        yield opened
    finally:
        await opened.close()


def _reapply(data: Path, clickhouse_url: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TAPWIRE_DATA_DIR": str(data), "TAPWIRE_CLICKHOUSE_URL": clickhouse_url}
    return subprocess.run(
        [sys.executable, "-m", "tapwire_services.cli", "privacy", "reapply"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


async def test_reapply_queues_an_erasure_for_a_restored_subject(
    tmp_path: Path, warehouse: ClickHouseWarehouse, clickhouse_database_url: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # The state after a restore: the ledger says i:uma was erased, and the restored warehouse holds her again.
    await write(warehouse, [event("ACC-1", identity="uma"), event("ACC-1", identity="vic")])
    async with ControlStore(f"sqlite+aiosqlite:///{data / 'control.db'}") as store:
        await store.upsert_account(
            "ACC-1",
            passcode="passcode-reapply-0123456789",
            write_key="writekey-reapply-0123456789",
            region="eu1",
        )
        salt = await PrivacyRepository(store.engine, clock=system_clock).secrets.identifier_salt()
        now = dt.datetime.now(dt.UTC)
        await ErasureLedger(store.engine, warehouse).record(
            [LedgerEntry("ACC-1", key_hash(salt, "ACC-1", "i:uma"), "r-before-the-restore", now)]
        )

    done = _reapply(data, clickhouse_database_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ledger: 1 accounts; 1 erased subjects found again; 1 erasures queued")
    assert "uma" not in done.stdout + done.stderr
    async with ControlStore(f"sqlite+aiosqlite:///{data / 'control.db'}") as store:
        async with store.engine.connect() as connection:
            queued = (
                await connection.execute(select(PrivacyRequestRow.type, PrivacyRequestRow.status))
            ).all()
        assert [tuple(row) for row in queued] == [("erasure", "pending")]
        working = await PrivacyRepository(store.engine, clock=system_clock).working_sets.get_many(
            [line.strip() for line in done.stdout.splitlines()[1:]]
        )
    assert [sorted(w.identifiers) for w in working.values()] == [["i:uma"]]

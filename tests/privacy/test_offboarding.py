"""Account offboarding: access revoked first, the whole account in one archive, then nothing of it left in any
store (scanned from the schemas, so a new table is scanned too), another account untouched, a completion record
without personal data that is purged after 24 months; a worker killed mid-way resumes and finishes."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.accounts import AccountDirectory
from tapwire_core.control.privacy.subject_keys import TENANT_WIDE
from tapwire_core.control.store import ControlStore
from tapwire_core.warehouse import Warehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_privacy.offboarding.account_rows import KEPT, REDACTED, account_tables, unplaced_tables
from tapwire_privacy.offboarding.handler import table_batches
from tapwire_privacy.rate_limit import SlidingWindowLimit
from tapwire_privacy.reapply import reapply
from tapwire_privacy.records import RequestView
from tapwire_privacy.schemas import warehouse_tables
from tapwire_privacy.service import PrivacyService
from tapwire_privacy.stores.files import archive_path
from tests.credentials import LOOKUP_DIGESTS
from tests.infra.clickhouse import WarehouseFactory
from tests.privacy.account_seed import seed_every_table
from tests.privacy.conftest import HEADERS, Api, Rig
from tests.privacy.seed import alias, event, profile, write

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSCODE_1 = "passcode-1-0123456789"
WRITE_KEY_1 = "writekey-1-0123456789"


@pytest.fixture
async def control(store_url: str) -> AsyncIterator[ControlStore]:
    """The control store on SQLite and on PostgreSQL, with two accounts."""
    store = ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    await store.upsert_account("ACC-1", passcode=PASSCODE_1, write_key=WRITE_KEY_1, region="eu1")
    await store.upsert_account(
        "ACC-2", passcode="passcode-2-0123456789", write_key="writekey-2-0123456789", region="eu1"
    )
    try:
        yield store
    finally:
        await store.close()


def _service(rig: Rig) -> PrivacyService:
    return PrivacyService(
        repository=rig.repository,
        settings=rig.settings,
        clock=rig.clock,
        intake_limit=SlidingWindowLimit(limit=3, window_s=60, clock=lambda: 0.0),
    )


async def _seed(rig: Rig) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Both accounts in the warehouse, with an earlier export archive each, and a row in every control table."""
    for account in ("ACC-1", "ACC-2"):
        await write(
            rig.warehouse,
            [
                event(account, "Viewed", identity=f"{account}-alice", email=f"alice@{account}.example"),
                event(account, "Charged", identity=f"{account}-alice", props={"amount": 10}),
                profile(account, {"Name": "Alice", "Phone": "+4915100000001"}, identity=f"{account}-alice"),
                profile(account, {"score": {"$incr": 1}}, identity=f"{account}-alice"),
                event(account, "Viewed", anonymous_id=f"{account}-anon"),
            ],
        )
        await alias(rig.warehouse, account, f"a:{account}-anon", f"i:{account}-alice")
        await rig.repository.requests.create(
            account_id=account, type="export", scope="tenant", channel="api", jurisdiction="gdpr", keys=[]
        )
    await rig.run_until_settled()
    return {account: await seed_every_table(rig.control.engine, account) for account in ("ACC-1", "ACC-2")}


async def _control_rows(engine: AsyncEngine, account_id: str) -> dict[str, int]:
    async with engine.connect() as connection:
        return {
            t.name: int(
                await connection.scalar(select(func.count()).select_from(t.table).where(t.match(account_id)))
                or 0
            )
            for t in account_tables()
        }


async def _warehouse_rows(warehouse: Warehouse, account_id: str) -> dict[str, int]:
    """Rows per warehouse table (every table the migrations create), without FINAL and without the delete mask."""
    found = {}
    for table in warehouse_tables():
        rows = await warehouse.query(
            f"SELECT count() AS n FROM {table} WHERE account_id = {{a:String}}"
            + (" AND key_hash NOT IN ('*', '*account')" if table == "privacy_erasure_ledger" else "")
            + " SETTINGS apply_deleted_mask = 0",
            {"a": account_id},
        )
        found[table] = int(rows[0]["n"])
    return found


async def _offboard(rig: Rig) -> RequestView:
    account = await rig.control.get_account("ACC-1")
    assert account is not None
    view = await _service(rig).start_offboarding(account=account)
    assert await _service(rig).start_offboarding(account=account) == view  # one job, however often asked
    return view


def test_every_control_table_is_reached_by_an_offboarding() -> None:
    assert unplaced_tables() == []
    assert set(KEPT) <= {t.name for t in account_tables()}


@pytest.mark.integration
async def test_nothing_of_the_account_is_left_in_any_store_and_the_other_is_untouched(rig: Rig) -> None:
    await _seed(rig)
    other_control = await _control_rows(rig.control.engine, "ACC-2")
    other_warehouse = await _warehouse_rows(rig.warehouse, "ACC-2")
    earlier = {v.account_id: v.id for v in await rig.repository.requests.open()} | {
        v.account_id: v.id
        for account in ("ACC-1", "ACC-2")
        for v in await rig.repository.requests.of_account(account_id=account, status="completed")
    }
    assert archive_path(rig.worker.export_dir, earlier["ACC-1"]).exists()
    assert all(n for n in (await _control_rows(rig.control.engine, "ACC-1")).values())

    view = await _offboard(rig)
    await rig.worker.tick()
    # Access went first: the passcode and write key no longer authenticate, client SDKs are switched off.
    directory = AccountDirectory(rig.control)
    assert await directory.authenticate_passcode("ACC-1", PASSCODE_1) is None
    assert await directory.authenticate_write_key(WRITE_KEY_1) is None
    account = await rig.control.get_account("ACC-1")
    assert account is not None and account.settings["client_ingestion"] is False

    await rig.run_until_settled(max_ticks=40)
    done = await rig.repository.requests.get(view.id)
    assert done.status == "completed", done.progress

    left = await _control_rows(rig.control.engine, "ACC-1")
    assert left.pop("privacy_requests") == 1
    assert left.pop("privacy_suppressions") == 1 and left.pop("privacy_erasure_ledger") == 2
    assert left.pop("privacy_audit") == len(await rig.repository.audit.trail(view.id))
    assert left == dict.fromkeys(left, 0)
    async with rig.control.engine.connect() as connection:
        kept = await connection.execute(
            select(account_tables()[0].table.metadata.tables["privacy_suppressions"].c.key_hash).where(
                account_tables()[0].table.metadata.tables["privacy_suppressions"].c.account_id == "ACC-1"
            )
        )
        assert [row[0] for row in kept] == [TENANT_WIDE]
    assert await _warehouse_rows(rig.warehouse, "ACC-1") == dict.fromkeys(warehouse_tables(), 0)
    assert not archive_path(rig.worker.export_dir, earlier["ACC-1"]).exists()

    assert await _control_rows(rig.control.engine, "ACC-2") == other_control
    assert await _warehouse_rows(rig.warehouse, "ACC-2") == other_warehouse
    assert archive_path(rig.worker.export_dir, earlier["ACC-2"]).exists()
    assert await rig.control.get_account("ACC-2") is not None


@pytest.mark.integration
async def test_the_archive_holds_every_row_of_the_account_and_nothing_else(rig: Rig) -> None:
    seeded = (await _seed(rig))["ACC-1"]
    events = await rig.warehouse.query("SELECT event_id FROM events WHERE account_id = 'ACC-1'")
    view = await _offboard(rig)
    await rig.run_until_settled(max_ticks=40)
    done = await rig.repository.requests.get(view.id)
    path = archive_path(rig.worker.export_dir, view.id)
    record = (done.verification or {})["offboarding"]
    assert record["archive"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    assert all(b"ACC-2" not in content for content in files.values())
    exported = {e["event_id"] for e in orjson.loads(files["stores/warehouse.events.json"])}
    assert exported == {e["event_id"] for e in events}
    for table in warehouse_tables():
        if table != "privacy_erasure_ledger":
            assert orjson.loads(files[f"stores/warehouse.{table}.json"]), table
    for entry in account_tables():
        rows = orjson.loads(files[f"stores/control.{entry.name}.json"])
        assert record["archive"]["rows"][f"control.{entry.name}"] == len(rows)
        assert not REDACTED.get(entry.name, frozenset()) & {c for row in rows for c in row}, entry.name
        if entry.name in ("accounts", "console_sessions"):
            continue  # the account row is checked below; sessions were ended before the export
        keys = [c.name for c in entry.table.primary_key.columns if c.name not in REDACTED.get(entry.name, ())]
        for row in seeded[entry.name]:
            assert any(all(r[k] == row[k] for k in keys) for r in rows), (entry.name, row)
    assert orjson.loads(files["stores/control.accounts.json"])[0]["id"] == "ACC-1"
    assert len(orjson.loads(files["stores/files.export_archives.json"])) == 1


@pytest.mark.integration
async def test_the_completion_record_names_no_one_and_is_purged_after_24_months(rig: Rig) -> None:
    await _seed(rig)
    view = await _offboard(rig)
    await rig.run_until_settled(max_ticks=40)
    done = await rig.repository.requests.get(view.id)
    record = orjson.dumps([done.verification, done.progress, await rig.repository.audit.trail(view.id)])
    for personal in (b"alice", b"example", b"+49151", b"Alice", PASSCODE_1.encode(), b":console_users:email"):
        assert personal not in record, personal
    summary = (done.verification or {})["offboarding"]
    assert summary["account_id"] == "ACC-1" and summary["removed"]["control.account"] > 0
    assert summary["removed"]["warehouse.events"] == 3 and summary["archive"]["bytes"] > 0
    assert done.verification is not None and done.verification["bus_copies"]
    assert await rig.repository.notices.of_request(view.id) == []  # the account and its webhook are gone

    # The archive is erased after the export retention; the record stays.
    rig.clock.advance(days=rig.settings.privacy_export_retention_days + 1)
    await rig.worker.housekeeping()
    assert not archive_path(rig.worker.export_dir, view.id).exists()
    assert (await rig.repository.requests.get(view.id)).export_erased_at is not None

    rig.clock.now = done.received_at + dt.timedelta(days=729)
    await rig.worker.housekeeping()
    assert (await rig.repository.requests.get(view.id)).status == "completed"
    last = max(entry["at"] for entry in await rig.repository.audit.trail(view.id))
    rig.clock.now = last + dt.timedelta(days=731)
    await rig.worker.housekeeping()
    assert await rig.repository.requests.of_account(account_id="ACC-1") == []
    assert await rig.repository.audit.trail(view.id) == []


class TestKilledWorker:
    """A worker SIGKILLed in the export, then one SIGKILLed right after deleting the account's control rows: the
    next one finishes from the saved progress."""

    @pytest.fixture
    async def control(self, tmp_path: Path) -> AsyncIterator[ControlStore]:
        store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
        await store.start()
        await store.upsert_account("ACC-1", passcode=PASSCODE_1, write_key=WRITE_KEY_1, region="eu1")
        await store.upsert_account(
            "ACC-2", passcode="passcode-2-0123456789", write_key="writekey-2-0123456789", region="eu1"
        )
        try:
            yield store
        finally:
            await store.close()

    @pytest.fixture
    async def warehouse(self, warehouse_factory: WarehouseFactory) -> Warehouse:
        """ClickHouse over HTTP (the rig): the killed workers run in processes of their own."""
        warehouse = await warehouse_factory("clickhouse")
        await migrate(warehouse, cluster=None)
        return warehouse

    async def _killed(self, rig: Rig, tmp_path: Path, clickhouse_rig: str, *flags: str) -> None:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.privacy.worker_child",
            "--control",
            f"sqlite+aiosqlite:///{tmp_path / 'control.db'}",
            "--clickhouse",
            f"{clickhouse_rig}/{rig.warehouse.database}",
            "--data",
            str(rig.settings.data_dir),
            "--lease-s",
            "1",
            "--ticks",
            "6",
            *flags,
            cwd=REPO_ROOT,
            env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(child.communicate(), 120)
        assert child.returncode == -9, stderr.decode(errors="replace")[-3000:]
        await asyncio.sleep(1.2)  # its lease (1 s on the real clock) runs out

    @pytest.mark.integration
    async def test_an_offboarding_killed_twice_resumes_and_completes(
        self, rig: Rig, clickhouse_rig: str, tmp_path: Path
    ) -> None:
        await _seed(rig)
        view = await _offboard(rig)
        rig.clock.now = dt.datetime.now(dt.UTC)
        await (
            rig.worker.housekeeping()
        )  # what the real clock expires (the seeded exports' archives) goes first
        other = await _control_rows(rig.control.engine, "ACC-2")

        await self._killed(rig, tmp_path, clickhouse_rig, "--die-in-export", "warehouse.events")
        dying = await rig.repository.requests.get(view.id)
        assert dying.progress["phase"] == "export" and "revoked" in dying.progress["offboarding"]
        assert archive_path(rig.worker.export_dir, view.id).with_suffix(".zip.partial").exists()

        await self._killed(rig, tmp_path, clickhouse_rig, "--die-in", "control.account")
        dying = await rig.repository.requests.get(view.id)
        assert await rig.control.get_account("ACC-1") is None  # deleted, and the worker died before saving it
        assert dying.progress["stores"]["control.account"]["state"] != "erased"

        rig.clock.now = dt.datetime.now(dt.UTC)
        await rig.run_until_settled(max_ticks=40)
        done = await rig.repository.requests.get(view.id)
        assert done.status == "completed", done.progress
        trail = [entry["action"] for entry in await rig.repository.audit.trail(view.id)]
        assert trail.count("pass_abandoned") == 2 and trail.count("access_revoked") == 1
        assert trail.count("archive_written") == 1
        # The rows the killed worker deleted are still counted in the record.
        assert (done.verification or {})["offboarding"]["removed"]["control.account"] > 0
        left = await _control_rows(rig.control.engine, "ACC-1")
        # The record, the '*' suppression, the '*' and '*account' ledger entries and its audit trail.
        assert sum(left.values()) == 1 + 1 + 2 + len(trail)
        assert await _warehouse_rows(rig.warehouse, "ACC-1") == dict.fromkeys(warehouse_tables(), 0)
        assert await _control_rows(rig.control.engine, "ACC-2") == other
        with zipfile.ZipFile(archive_path(rig.worker.export_dir, view.id)) as archive:
            assert len(orjson.loads(archive.read("stores/warehouse.events.json"))) == 3


@pytest.mark.integration
async def test_the_api_starts_it_once_and_its_signed_link_follows_it_without_credentials(api: Api) -> None:
    rig = api.rig
    await _seed(rig)
    refused = await api.client.post("/privacy/v1/offboarding", json={"confirm": "ACC-2"}, headers=HEADERS)
    assert refused.status_code == 422 and refused.json()["error"].startswith("confirm:")
    assert (await api.client.post("/privacy/v1/offboarding", json={"confirm": "ACC-1"})).status_code == 401
    started = await api.client.post("/privacy/v1/offboarding", json={"confirm": "ACC-1"}, headers=HEADERS)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["phase"] == "revoke" and job["archive"] is None
    again = await api.client.post("/privacy/v1/offboarding", json={"confirm": "ACC-1"}, headers=HEADERS)
    assert again.json()["id"] == job["id"]

    await rig.worker.tick()
    # The passcode stopped working with the first pass (a process that verified it keeps it for at most 60 s);
    # the signed link is what follows the job now.
    assert await AccountDirectory(rig.control).authenticate_passcode("ACC-1", PASSCODE_1) is None
    status_path = job["status_url"].removeprefix(rig.settings.resolved_public_url())
    shown = (await api.client.get(status_path)).json()
    assert shown["access_revoked"]["credentials"] == 2 and shown["archive"]["sha256"]
    download = await api.client.get(shown["archive"]["url"].removeprefix(rig.settings.resolved_public_url()))
    assert download.status_code == 200 and download.content[:2] == b"PK"
    assert hashlib.sha256(download.content).hexdigest() == shown["archive"]["sha256"]
    tampered = status_path.replace("signature=", "signature=0")
    assert (await api.client.get(tampered)).status_code == 403

    await rig.run_until_settled(max_ticks=40)
    finished = (await api.client.get(status_path)).json()
    assert finished["status"] == "completed"
    assert finished["completion_record"]["archive"]["sha256"] == shown["archive"]["sha256"]


@pytest.mark.integration
async def test_a_restore_brings_the_account_back_and_reapply_deletes_it_whole_again(rig: Rig) -> None:
    await _seed(rig)
    view = await _offboard(rig)
    await rig.run_until_settled(max_ticks=40)
    assert (await rig.repository.requests.get(view.id)).status == "completed"
    archives = sorted(p.name for p in rig.worker.export_dir.iterdir())

    # A restore from before the deletion: the account, its credentials and its events are back.
    await rig.control.upsert_account("ACC-1", passcode=PASSCODE_1, write_key=WRITE_KEY_1, region="eu1")
    await write(rig.warehouse, [event("ACC-1", "Viewed", identity="ACC-1-alice")])
    assert rig.registry.ledger is not None
    queued = await reapply(
        ledger=rig.registry.ledger,
        repository=rig.repository,
        warehouse=rig.warehouse,
        engine=rig.control.engine,
    )
    assert len(queued.requests) == 1
    await rig.run_until_settled(max_ticks=40)
    again = await rig.repository.requests.get(queued.requests[0])
    assert again.status == "completed" and again.progress["offboarding"]["reapplies"] == view.id
    assert await rig.control.get_account("ACC-1") is None
    assert await AccountDirectory(rig.control).authenticate_passcode("ACC-1", PASSCODE_1) is None
    assert await _warehouse_rows(rig.warehouse, "ACC-1") == dict.fromkeys(warehouse_tables(), 0)
    assert sorted(p.name for p in rig.worker.export_dir.iterdir()) == archives  # no second archive


@pytest.mark.integration
async def test_control_tables_are_read_into_the_archive_a_batch_at_a_time(rig: Rig) -> None:
    await seed_every_table(rig.control.engine, "ACC-1")
    audit = next(t for t in account_tables() if t.name == "audit_log")
    async with rig.control.engine.begin() as connection:
        for n in range(7):
            await connection.execute(
                audit.table.insert().values(
                    account_id="ACC-1",
                    at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
                    actor=f"a{n}",
                    role="admin",
                    action="x",
                    target="",
                    outcome="ok",
                    client="",
                    detail={},
                )
            )
    sizes = [len(batch) async for batch in table_batches(rig.control.engine, audit, "ACC-1", size=3)]
    assert sizes == [3, 3, 2]

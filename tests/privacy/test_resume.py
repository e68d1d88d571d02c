"""Kill the worker (SIGKILL, a real subprocess) in the middle of an erasure: a restart completes it once."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from pathlib import Path

import pytest

from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings
from tapwire_core.warehouse.migrations import migrate
from tapwire_privacy.registry import default_registry
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.worker import PrivacyWorker
from tests.infra.clickhouse import WarehouseFactory
from tests.privacy.conftest import FakeClock, Rig
from tests.privacy.seed import event, profile, rows_naming, write

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_worker_killed_mid_erasure_resumes_and_completes_once(
    warehouse_factory: WarehouseFactory, clickhouse_rig: str, tmp_path: Path
) -> None:
    warehouse = await warehouse_factory("clickhouse")
    await migrate(warehouse, cluster=None)
    control_url = f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    control = ControlStore(control_url)
    await control.start()
    try:
        clock = FakeClock(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        repository = PrivacyRepository(control.engine, clock=clock)
        await write(
            warehouse,
            [
                event("ACC-1", "Viewed", identity="kim"),
                event("ACC-1", "Viewed", identity="kim"),
                profile("ACC-1", {"Name": "Kim", "Email": "kim@example.com"}, identity="kim"),
                event("ACC-1", "Viewed", identity="lee"),
            ],
        )
        request = await repository.requests.create(
            account_id="ACC-1",
            type="erasure",
            scope="subject",
            channel="api",
            jurisdiction="gdpr",
            keys=["i:kim"],
        )

        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.privacy.worker_child",
            "--control",
            control_url,
            "--clickhouse",
            f"{clickhouse_rig}/{warehouse.database}",
            "--data",
            str(tmp_path / "data"),
            "--die-in",
            "warehouse.profile_props",
            "--lease-s",
            "30",
            cwd=REPO_ROOT,
            env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(child.communicate(), 120)
        assert child.returncode == -9, stderr.decode(errors="replace")[-3000:]

        # Killed after the profile_props delete was issued but before it was recorded.
        crashed = await repository.requests.get(request.id)
        assert crashed.status == "in_progress" and crashed.progress["phase"] == "erase"
        stores = crashed.progress["stores"]
        assert stores["warehouse.events"]["state"] == "erased"
        assert stores["warehouse.profile_props"]["state"] == "pending"
        assert stores["warehouse.profile_props"]["counted"] == 2
        assert (await rows_naming(warehouse, "ACC-1", ["kim"]))["profile_props"] == 0

        # A fresh worker, once the dead one's lease has run out.
        settings = Settings(data_dir=tmp_path / "data", privacy_sweep_delay_s=30)
        registry = default_registry(
            warehouse=warehouse, engine=control.engine, export_dir=tmp_path / "exports"
        )
        worker = PrivacyWorker(repository=repository, registry=registry, settings=settings, clock=clock)
        assert await repository.leases.claim(owner="early", lease_s=1, limit=10) == []  # still leased
        clock.advance(seconds=31)
        rig = Rig(control, repository, warehouse, registry, worker, clock, settings)
        await rig.run_until_settled()

        done = await repository.requests.get(request.id)
        assert done.status == "completed"
        assert done.progress["stores"]["warehouse.events"]["removed"] == 2
        assert done.progress["stores"]["warehouse.profile_props"]["removed"] == 2
        trail = await repository.audit.trail(request.id)
        actions = [(entry["action"], entry["store"]) for entry in trail]
        first_sweep = actions[: actions.index(("second_sweep_started", None))]
        for store in ("warehouse.events", "warehouse.profiles", "warehouse.profile_props"):
            assert first_sweep.count(("erased", store)) == 1, store
        assert [a for a, _ in actions].count("completed") == 1
        assert sum((await rows_naming(warehouse, "ACC-1", ["kim"])).values()) == 0
        assert (await rows_naming(warehouse, "ACC-1", ["lee"]))["events"] == 1
    finally:
        await control.close()

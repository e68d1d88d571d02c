"""Every request has an attempt limit: one that keeps killing its worker stops, visibly, instead of taking down
worker after worker; a long pass keeps its lease and is not taken for a dead one."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from tapwire_core import metrics
from tapwire_core.privacy.scope import Scope
from tapwire_core.warehouse import Warehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_privacy.stores.files import archive_path
from tapwire_privacy.worker import PrivacyWorker
from tests.infra.clickhouse import WarehouseFactory
from tests.privacy.conftest import HEADERS, Api, Rig
from tests.privacy.seed import event, profile, write

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def warehouse(warehouse_factory: WarehouseFactory) -> Warehouse:
    """ClickHouse over HTTP (the rig): the killed workers run in processes of their own."""
    warehouse = await warehouse_factory("clickhouse")
    await migrate(warehouse, cluster=None)
    return warehouse


def _stopped(cause: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "tapwire_privacy_requests_stopped_total", {"type": "export", "cause": cause}
    )
    return value or 0.0


async def _killed_worker(rig: Rig, tmp_path: Path, clickhouse_rig: str, store: str) -> None:
    """One worker process that takes the due requests and is SIGKILLed while exporting ``store``."""
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
        "--die-in-export",
        store,
        "--lease-s",
        "1",
        cwd=REPO_ROOT,
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(child.communicate(), 120)
    assert child.returncode == -9, stderr.decode(errors="replace")[-3000:]
    await asyncio.sleep(1.2)  # its lease (1 s on the real clock) runs out


async def test_a_request_that_kills_every_worker_stops_after_the_limit(
    api: Api, clickhouse_rig: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = api.rig
    await write(
        rig.warehouse,
        [event("ACC-1", identity=f"user-{i}") for i in range(30)]
        + [profile("ACC-1", {"Name": "Kim"}, identity="kim"), event("ACC-1", identity="kim")],
    )
    poison = await rig.repository.requests.create(
        account_id="ACC-1", type="export", scope="tenant", channel="api", jurisdiction="gdpr", keys=[]
    )
    rig.clock.advance(seconds=1)  # due after the tenant export: a worker takes it second
    innocent = await rig.repository.requests.create(
        account_id="ACC-1", type="export", scope="subject", channel="api", jurisdiction="gdpr", keys=["i:kim"]
    )
    before = _stopped("abandoned")

    # Each worker takes both requests, begins the tenant export and dies in it (as the OOM killer does).
    for _ in range(rig.settings.privacy_max_abandoned_passes):
        await _killed_worker(rig, tmp_path, clickhouse_rig, "warehouse.events")
        dying = await rig.repository.requests.get(poison.id)
        assert dying.status == "in_progress" and "pass" in dying.progress, dying
        assert archive_path(rig.worker.export_dir, poison.id).with_suffix(".zip.partial").exists()
    trail = [entry["action"] for entry in await rig.repository.audit.trail(poison.id)]
    assert trail.count("pass_abandoned") == rig.settings.privacy_max_abandoned_passes - 1

    # The next worker does not try again: the request stops, and says why, everywhere an operator looks.
    rig.clock.now = dt.datetime.now(dt.UTC)
    with caplog.at_level(logging.ERROR, logger="tapwire_privacy"):
        assert await rig.worker.tick() == 2
    shown = (await api.client.get(f"/privacy/v1/requests/{poison.id}", headers=HEADERS)).json()
    assert shown["status"] == "failed"
    assert shown["failure"] == {"cause": "abandoned", "passes": rig.settings.privacy_max_abandoned_passes}
    actions = [entry["action"] for entry in shown["audit"]]
    assert actions.count("pass_abandoned") == rig.settings.privacy_max_abandoned_passes
    assert actions.count("stopped_retrying") == 1 and "completed" not in actions
    assert [n["kind"] for n in shown["notices"]] == ["failed"]
    assert _stopped("abandoned") == before + 1
    assert any(
        r.getMessage().startswith("privacy request stopped retrying")
        and getattr(r, "request", None) == poison.id
        for r in caplog.records
    )
    listed = (await api.client.get("/privacy/v1/requests?status=failed", headers=HEADERS)).json()
    assert [r["id"] for r in listed["requests"]] == [poison.id]
    # What the dead workers half wrote is gone; nothing was published under the archive's name.
    assert not archive_path(rig.worker.export_dir, poison.id).with_suffix(".zip.partial").exists()
    assert not archive_path(rig.worker.export_dir, poison.id).exists()
    await rig.worker.refresh_deadline_metrics()
    assert metrics.REGISTRY.get_sample_value("tapwire_privacy_requests_failed") == 1

    # The request each dead worker held but had not begun is not blamed: it is answered.
    done = await rig.repository.requests.get(innocent.id)
    assert done.status == "completed" and "pass" not in done.progress
    assert "pass_abandoned" not in [e["action"] for e in await rig.repository.audit.trail(innocent.id)]
    assert await rig.worker.tick() == 0  # nothing left to claim

    # An operator re-queues it (say, after giving the worker more memory); the next pass answers it.
    retried = await api.client.post(f"/privacy/v1/requests/{poison.id}/retry", headers=HEADERS)
    assert retried.status_code == 200 and retried.json()["failure"] is None
    await rig.run_until_settled()
    answered = await rig.repository.requests.get(poison.id)
    assert answered.status == "completed" and answered.progress["stores"]["warehouse.events"]["rows"] == 31


class _SlowExport:
    """Holds an export open until released, like a whole account's export that takes longer than a lease."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        self.started.set()
        await self.release.wait()
        yield [{"account_id": scope.account_id}]


async def test_a_long_pass_keeps_its_lease(rig: Rig) -> None:
    slow = _SlowExport()
    rig.registry.handler("warehouse.events").export = slow.export  # type: ignore[method-assign]
    request = await rig.repository.requests.create(
        account_id="ACC-1", type="export", scope="tenant", channel="api", jurisdiction="gdpr", keys=[]
    )
    worker = PrivacyWorker(
        repository=rig.repository, registry=rig.registry, settings=rig.settings, clock=rig.clock, lease_s=0.3
    )
    pass_ = asyncio.create_task(worker.tick())
    await asyncio.wait_for(slow.started.wait(), 30)
    for _ in range(3):
        rig.clock.advance(seconds=1)  # past the lease the pass started with
        await asyncio.sleep(0.25)  # the worker renews it (every 0.1 s)
        assert await rig.repository.leases.claim(owner="another", lease_s=60, limit=10) == []
    slow.release.set()
    assert await asyncio.wait_for(pass_, 30) == 1
    done = await rig.repository.requests.get(request.id)
    assert done.status == "completed" and done.progress["stores"]["warehouse.events"]["rows"] == 1
    assert "pass_abandoned" not in [e["action"] for e in await rig.repository.audit.trail(request.id)]

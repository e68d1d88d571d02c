"""``tapwire serve privacy-worker`` in distributed mode: PostgreSQL and ClickHouse over HTTP (the rig)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tests.credentials import CREDENTIAL_SECRET
from tests.integration.processes import TapwireProcess
from tests.privacy.seed import event, profile, rows_naming, write

ACCOUNT, PASSCODE = "ACC-1", "passcode-distributed-0123456789"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}

pytestmark = pytest.mark.integration


@pytest.fixture
async def warehouse(clickhouse_database_url: str) -> AsyncIterator[ClickHouseWarehouse]:
    opened = ClickHouseWarehouse(clickhouse_database_url)
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def service(
    tmp_path: Path, fresh_postgres_url: str, clickhouse_database_url: str
) -> Iterator[TapwireProcess]:
    proc = TapwireProcess(
        ["serve", "privacy-worker"],
        env={
            "TAPWIRE_DATABASE_URL": fresh_postgres_url,
            "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
            "TAPWIRE_CLICKHOUSE_URL": clickhouse_database_url,
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-distributed-0123456789",
            "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
            "TAPWIRE_PRIVACY_POLL_S": "0.2",
            "TAPWIRE_PRIVACY_SWEEP_DELAY_S": "1",
        },
        log_path=tmp_path / "privacy.log",
    ).start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.kill()


async def test_the_privacy_service_erases_on_postgres_and_clickhouse(
    service: TapwireProcess, warehouse: ClickHouseWarehouse
) -> None:
    # The service migrated the warehouse on start; the test writes as the loader would.
    await write(
        warehouse,
        [
            event(ACCOUNT, identity="uma"),
            profile(ACCOUNT, {"Email": "uma@example.com"}, identity="uma"),
            event(ACCOUNT, email="uma@example.com", object_id="uma-tablet"),
            event(ACCOUNT, identity="vic"),
        ],
    )
    async with httpx.AsyncClient(base_url=service.url, headers=HEADERS, timeout=10) as client:
        created = await client.post(
            "/privacy/v1/requests", json={"type": "erasure", "subject": {"identity": "uma"}}
        )
        assert created.status_code == 202, created.text
        request_id = created.json()["id"]
        deadline = time.monotonic() + 60
        phase = ""
        while time.monotonic() < deadline and phase != "copies_expiring":
            shown = (await client.get(f"/privacy/v1/requests/{request_id}")).json()
            phase = shown["phase"]
            await asyncio.sleep(0.2)
        # Every store is clean; the copies on Kafka keep the request open until the topics' retention passes.
        assert phase == "copies_expiring" and shown["status"] == "in_progress", service.logs()[-3000:]
        assert [copy["topic"] for copy in shown["bus_copies"]] == ["tapwire.events", "tapwire.events.dlq"]
        assert shown["copies_gone_at"] == shown["bus_copies"][1]["may_exist_until"]
        assert dt.datetime.fromisoformat(shown["copies_gone_at"]) < dt.datetime.fromisoformat(shown["due_at"])
        inventory = await client.get("/privacy/v1/inventory")
        assert inventory.status_code == 200
    assert sum((await rows_naming(warehouse, ACCOUNT, ["uma"])).values()) == 0
    assert (await rows_naming(warehouse, ACCOUNT, ["vic"]))["events"] == 1

"""Distributed mode with two ``tapwire serve query`` processes on one PostgreSQL and one ClickHouse (the HTTP
rig), as the manifests run replicas behind one Service without affinity: a count that goes ``partial`` on one
replica is answered by polling the other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_services import generate
from tests.credentials import CREDENTIAL_SECRET
from tests.integration.processes import TapwireProcess

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-REPLICAS-01", "passcode-replicas-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
QUERY = {"event_name": "App Opened", "from": 20260101, "to": 20260131}


async def _load(url: str) -> None:
    warehouse = ClickHouseWarehouse(url)
    await warehouse.start()
    try:
        await migrate(warehouse, cluster=None)
        records = [*generate.profiles(200, 5), *generate.events(200, 3000, 5)]
        await generate.load(warehouse, records, account_id=ACCOUNT, received_ms=1_770_000_000_000)
    finally:
        await warehouse.close()


@pytest.fixture
def replicas(
    tmp_path: Path, fresh_postgres_url: str, clickhouse_database_url: str
) -> Iterator[list[TapwireProcess]]:
    asyncio.run(_load(clickhouse_database_url))
    env = {
        "TAPWIRE_DATABASE_URL": fresh_postgres_url,
        "TAPWIRE_CLICKHOUSE_URL": clickhouse_database_url,
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-replicas-0123456789abcdef",
        "TAPWIRE_QUERY_CURSOR_SECRET": "cursor-secret-shared-by-replicas",
    }
    procs = [
        TapwireProcess(["serve", "query"], env | extra, tmp_path / f"query-{i}.log")
        for i, extra in enumerate([{"TAPWIRE_QUERY_SYNC_WAIT_S": "0"}, {}])
    ]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_ready()
        yield procs
    finally:
        for proc in procs:
            proc.kill()


def test_a_req_id_from_one_replica_is_answered_by_the_other(replicas: list[TapwireProcess]) -> None:
    partial_replica, other = replicas
    synchronous = httpx.post(f"{other.url}/1/counts/profiles.json", json=QUERY, headers=HEADERS, timeout=30)
    assert synchronous.status_code == 200, synchronous.text
    expected = synchronous.json()["count"]
    assert expected > 0

    started = httpx.post(
        f"{partial_replica.url}/1/counts/profiles.json", json=QUERY, headers=HEADERS, timeout=30
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["status"] == "partial"
    req_id = body["req_id"]
    deadline = time.monotonic() + 30
    while body["status"] == "partial" and time.monotonic() < deadline:
        polled = httpx.get(f"{other.url}/1/counts/profiles.json?req_id={req_id}", headers=HEADERS, timeout=30)
        assert polled.status_code == 200, polled.text
        body = polled.json()
        time.sleep(0.05)
    assert body == {"status": "success", "count": expected}
    # Both replicas answer it, and only for its own account.
    again = httpx.get(
        f"{partial_replica.url}/1/counts/profiles.json?req_id={req_id}", headers=HEADERS, timeout=30
    )
    assert again.json() == body
    stranger = {"X-CleverTap-Account-Id": "TAP-NOBODY", "X-CleverTap-Passcode": PASSCODE}
    assert (
        httpx.get(f"{other.url}/1/counts/profiles.json?req_id={req_id}", headers=stranger).status_code == 401
    )

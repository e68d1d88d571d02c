"""A client that gives up stops its query in ClickHouse: the query service, served by uvicorn, in front of the
ClickHouse HTTP rig, whose statements on a marked event name wait a minute (a stand-in for a long query)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tapwire_core.control.store import ControlStore
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_query.routes import router as query_router
from tapwire_services.accounts import directory_for
from tests.credentials import LOOKUP_DIGESTS
from tests.infra.clickhouse import rig_statement, running_rig
from tests.integration.processes import free_port

pytestmark = pytest.mark.integration

ACCOUNT = "ACC-CANCEL"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": "pass-ACC-CANCEL-0123456789"}
SLOW = "Slow Down"
SLOW_QUERY = {"event_name": SLOW, "from": 20260101, "to": 20260131}


@dataclass
class Served:
    url: str
    rig: str


async def _ready() -> dict[str, bool]:
    return {"test": True}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    with running_rig(tmp_path, slow={SLOW: 60}) as rig:
        rig_statement(rig, "CREATE DATABASE cancel")
        warehouse = ClickHouseWarehouse(f"{rig}/cancel")
        await warehouse.start()
        await migrate(warehouse, cluster=None)
        store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
        await store.start()
        await store.upsert_account(
            ACCOUNT,
            passcode=HEADERS["X-CleverTap-Passcode"],
            write_key=f"wk-{ACCOUNT}-0123456789",
            region="eu1",
        )
        context = ServiceContext(
            settings=Settings(),
            authenticator=directory_for(store),
            readiness=_ready,
            warehouse_=warehouse,
            store_=store,
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(context, [query_router]), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        serving = asyncio.ensure_future(server.serve())
        for _ in range(400):
            if server.started:
                break
            await asyncio.sleep(0.05)
        try:
            yield Served(f"http://127.0.0.1:{port}", rig)
        finally:
            server.should_exit = True
            await serving
            await store.close()
            await warehouse.close()


async def killed_by_rig(rig: str, *, count: int, timeout_s: float = 10) -> list[str]:
    address = rig.split("@", 1)[1]
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            killed: list[str] = (await client.get(f"http://{address}/rig/killed")).json()
            if len(killed) >= count or time.monotonic() > deadline:
                return killed
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/1/counts/events.json", SLOW_QUERY),  # a count job, within its sync wait
        ("POST", "/1/events.json", SLOW_QUERY),  # an export's first call (is the event name known?)
        ("GET", f"/1/profile.json?identity={SLOW}", None),  # a lookup without a body
    ],
)
async def test_a_client_that_gives_up_stops_its_query(
    served: Served, method: str, path: str, body: dict[str, Any] | None
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=1.0) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.request(method, path, json=body, headers=HEADERS)
    assert len(await killed_by_rig(served.rig, count=1)) == 1
    # The account's query slot went with it: another query is answered at once.
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        other = await client.post("/1/counts/profiles.json", json={}, headers=HEADERS)
    assert other.status_code == 200 and other.json() == {"status": "success", "count": 0}

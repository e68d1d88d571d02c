"""The one request-body reader: work bounded before decoding, bodies charged to a per-process budget."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_core.http.app import create_app
from tapwire_core.http.body import BodyLimits, UnauthenticatedRead, read_json
from tapwire_core.http.body_budget import BodyBudget
from tapwire_core.http.context import ServiceContext
from tapwire_core.http.errors import ApiError, json_response
from tapwire_core.settings import Settings
from tapwire_ingest.http.upload import router as upload_router
from tests.fakes import FakeAccount, FakeAuthenticator, RecordingBus

A = {"X-CleverTap-Account-Id": "A", "X-CleverTap-Passcode": "pa"}
B = {"X-CleverTap-Account-Id": "B", "X-CleverTap-Passcode": "pb"}


async def _ready() -> dict[str, bool]:
    return {}


def app_for(
    bus: RecordingBus, budget: BodyBudget | None = None, routers: list[APIRouter] | None = None
) -> Any:
    context = ServiceContext(
        settings=Settings(upload_concurrency=100),
        authenticator=FakeAuthenticator({"A": ("pa", FakeAccount("A")), "B": ("pb", FakeAccount("B"))}),
        readiness=_ready,
        bus_=bus,
        body_budget=budget,
    )
    return create_app(context, routers or [upload_router])


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def client(bus: RecordingBus) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(bus)), base_url="http://t") as c:
        yield c


def upload(records: int, start: int = 0) -> bytes:
    return orjson.dumps(
        {
            "d": [
                {"type": "event", "identity": f"u{i}", "evtName": "E", "evtData": {"i": i}}
                for i in range(start, start + records)
            ]
        }
    )


async def test_tiny_objects_are_refused_before_they_are_decoded(client: httpx.AsyncClient) -> None:
    """4 MiB of ``{},`` decoded would be ~150 MiB of dicts; refused on its text, it costs a few copies of 4 MiB."""
    body = b'{"d":[' + b"{}," * (4 * 1024 * 1024 // 3) + b"{}]}"
    tracemalloc.start()
    try:
        response = await client.post("/1/upload", headers=A, content=body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413, response.text
    assert "values" in response.json()["error"]
    assert peak < 8 * len(body), f"peak {peak / 2**20:.0f} MiB for a {len(body) / 2**20:.0f} MiB body"


async def test_a_record_nested_past_the_limit_is_refused_not_a_server_error(
    client: httpx.AsyncClient,
) -> None:
    """Nesting under a key the validators never look at used to reach the event-id digest's encoder and fail."""
    deep = b"[" * 300 + b"]" * 300
    body = b'{"d":[{"type":"event","identity":"u","evtName":"E","evtData":{},"x":' + deep + b"}]}"
    response = await client.post("/1/upload", headers=A, content=body)
    assert response.status_code == 400, response.text
    assert "nests more than 32 levels" in response.json()["error"]


async def test_more_than_a_thousand_records_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/1/upload", headers=A, content=upload(1001))
    assert response.status_code == 400
    assert "At most 1000 records" in response.json()["error"]


async def test_gzip_inflates_in_steps_up_to_the_cap(client: httpx.AsyncClient) -> None:
    bomb = gzip.compress(b'{"d":[' + b" " * (30 * 1024 * 1024) + b"]}")
    response = await client.post("/1/upload", headers=A | {"Content-Encoding": "gzip"}, content=bomb)
    assert response.status_code == 413
    fine = await client.post(
        "/1/upload", headers=A | {"Content-Encoding": "gzip"}, content=gzip.compress(upload(3))
    )
    assert fine.json()["processed"] == 3


async def test_bodies_past_the_process_budget_get_429_and_the_budget_comes_back(bus: RecordingBus) -> None:
    bus.stall = asyncio.Event()
    one = await _charge_of(upload(100))
    budget = BodyBudget(one * 3 // 2, owner_share=1.0, retry_after_s=2)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(bus, budget)), base_url="http://t"
    ) as c:
        held = asyncio.create_task(c.post("/1/upload", headers=A, content=upload(100)))
        await _until(lambda: budget.in_flight == one)
        refused = await c.post("/1/upload", headers=B, content=upload(100, 100))
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "2"
        assert budget.in_flight == one  # what the refused request had taken is back
        bus.stall.set()
        assert (await held).status_code == 200
        assert (await c.post("/1/upload", headers=B, content=upload(100, 100))).status_code == 200
    assert budget.in_flight == 0


async def test_one_account_cannot_take_the_whole_budget(bus: RecordingBus) -> None:
    one = len(upload(200))
    budget = BodyBudget(8 * one * 20, owner_share=0.5)
    bus.stall = asyncio.Event()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(bus, budget)), base_url="http://t"
    ) as c:
        hostile = [
            asyncio.create_task(c.post("/1/upload", headers=A, content=upload(200, 200 * i)))
            for i in range(40)
        ]
        await _until(lambda: budget.held_by("A") > budget.owner_limit - 2 * one * 20)
        assert budget.held_by("A") <= budget.owner_limit
        other = asyncio.create_task(c.post("/1/upload", headers=B, content=upload(10)))
        await _until(lambda: budget.held_by("B") > 0)
        bus.stall.set()
        assert (await other).status_code == 200
        statuses = [r.status_code for r in await asyncio.gather(*hostile)]
    assert 429 in statuses and 200 in statuses
    assert budget.in_flight == 0


async def test_a_route_that_reads_before_authenticating_fails_loudly() -> None:
    router = APIRouter()

    @router.post("/careless")
    async def careless(request: Request) -> Response:
        return json_response(await read_json(request, BodyLimits(1024, 1024, 10, 2)))

    app = app_for(RecordingBus(), routers=[router])
    with pytest.raises(UnauthenticatedRead):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=True), base_url="http://t"
        ) as c:
            await c.post("/careless", content=b"{}")


async def _until(condition: Any, timeout_s: float = 5.0) -> None:
    """Wait for state other tasks change without telling (the budget's counters)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - nothing to wait on but the counters
            await asyncio.sleep(0.005)


async def _charge_of(body: bytes) -> int:
    """What one upload of ``body`` holds of the budget while it waits for the bus."""
    bus = RecordingBus()
    bus.stall = asyncio.Event()
    budget = BodyBudget(1 << 40)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(bus, budget)), base_url="http://t"
    ) as c:
        task = asyncio.create_task(c.post("/1/upload", headers=A, content=body))
        await _until(lambda: budget.in_flight > len(body))
        charge = budget.in_flight
        bus.stall.set()
        assert (await task).status_code == 200
    return charge


def test_a_light_tenant_gets_in_when_heavy_tenants_fill_the_shared_budget() -> None:
    budget = BodyBudget(80 * 2**20, owner_share=0.5, floor=2**20)
    heavy = [budget.ticket() for _ in range(8)]
    for number, ticket in enumerate(heavy):
        try:
            for _ in range(40):
                ticket.charge(2**20 + 1, f"heavy-{number}")  # past the floor at once: the shared part only
        except Exception:
            continue
    assert budget.in_flight - budget.reserved > budget.shared - 2**20 - 1  # full, to within one charge
    light = budget.ticket()
    light.charge(600_000, "light")
    light.charge(300_000)
    with pytest.raises(ApiError):
        light.charge(budget.floor)  # past its floor: back to the shared part, which is full
    light.release()
    for ticket in heavy:
        ticket.release()
    assert (budget.in_flight, budget.reserved) == (0, 0)

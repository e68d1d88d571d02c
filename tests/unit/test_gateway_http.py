"""Gateway HTTP behaviour over an in-memory bus: status codes, error shape, limits."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.http.upload import router as upload_router
from tests.fakes import FakeAccount, FakeAuthenticator, RecordingBus

HEADERS = {
    "X-CleverTap-Account-Id": "ACC-1",
    "X-CleverTap-Passcode": "secret",
    "Content-Type": "application/json",
}


async def _ready() -> dict[str, bool]:
    return {"fake": True}


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def client(bus: RecordingBus) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        max_body_bytes=64 * 1024, max_inflated_bytes=256 * 1024, bus_timeout_s=0.2, upload_concurrency=2
    )
    auth = FakeAuthenticator(
        {"ACC-1": ("secret", FakeAccount("ACC-1")), "ACC-US": ("secret", FakeAccount("ACC-US", region="us1"))}
    )
    app = create_app(
        ServiceContext(settings=settings, authenticator=auth, readiness=_ready, bus_=bus), [upload_router]
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def ev(i: int = 0) -> dict[str, Any]:
    return {"type": "event", "identity": f"u{i}", "evtName": "Viewed", "evtData": {"i": i}}


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "fail"
    assert body["code"] == status
    assert body["error"] == body["message"] and body["error"]
    return body


async def test_upload_accepts_and_publishes(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    response = await client.post("/1/upload", headers=HEADERS, content=orjson.dumps({"d": [ev(1), ev(2)]}))
    assert response.status_code == 200
    assert response.json() == {"status": "success", "processed": 2, "unprocessed": []}
    envelopes = bus.envelopes("tapwire.events")
    assert [e.ids.identity for e in envelopes] == ["u1", "u2"]
    assert all(e.account_id == "ACC-1" for e in envelopes)


async def test_partial_batch_keeps_valid_neighbours(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    bad = {"type": "event", "identity": "u", "evtData": {}}
    response = await client.post(
        "/1/upload", headers=HEADERS, content=orjson.dumps({"d": [ev(1), bad, ev(3)]})
    )
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "partial" and body["processed"] == 2
    assert body["unprocessed"][0]["code"] == 509
    assert len(bus.envelopes("tapwire.events")) == 2


async def test_dry_run_stores_nothing(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    response = await client.post("/1/upload?dryRun=1", headers=HEADERS, content=orjson.dumps({"d": [ev()]}))
    assert response.json()["processed"] == 1
    assert bus.published.get("tapwire.events", []) == []


async def test_gzip_body(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    body = gzip.compress(orjson.dumps({"d": [ev(i) for i in range(10)]}))
    response = await client.post("/1/upload", headers=HEADERS | {"Content-Encoding": "gzip"}, content=body)
    assert response.json()["processed"] == 10


async def test_gzip_bomb_is_413(client: httpx.AsyncClient) -> None:
    bomb = gzip.compress(b'{"d":[' + b" " * (2 * 1024 * 1024) + b"]}")
    assert len(bomb) < 64 * 1024
    response = await client.post("/1/upload", headers=HEADERS | {"Content-Encoding": "gzip"}, content=bomb)
    assert_error(response, 413)


async def test_corrupt_gzip_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/1/upload", headers=HEADERS | {"Content-Encoding": "gzip"}, content=b"\x1f\x8bnope"
    )
    assert_error(response, 400)


async def test_body_over_cap_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/1/upload", headers=HEADERS, content=b"x" * (65 * 1024))
    assert_error(response, 413)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b'{"d": [NaN]}',
        b'{"d": [Infinity]}',
        b'{"d": ["\xff\xfe"]}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
async def test_malformed_json_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    assert_error(await client.post("/1/upload", headers=HEADERS, content=body), 400)


@pytest.mark.parametrize("payload", [{"x": []}, {"d": {}}, [], {"d": "records"}])
async def test_wrong_shape_is_400(client: httpx.AsyncClient, payload: Any) -> None:
    assert_error(await client.post("/1/upload", headers=HEADERS, content=orjson.dumps(payload)), 400)


async def test_1001_records_is_400(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    response = await client.post(
        "/1/upload", headers=HEADERS, content=orjson.dumps({"d": [{"type": "event"}] * 1001})
    )
    assert "1000" in assert_error(response, 400)["error"]
    assert bus.published.get("tapwire.events", []) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-CleverTap-Account-Id": "ACC-1"},
        {"X-CleverTap-Account-Id": "ACC-1", "X-CleverTap-Passcode": "wrong"},
        {"X-CleverTap-Account-Id": "NOPE", "X-CleverTap-Passcode": "secret"},
    ],
)
async def test_bad_credentials_are_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert_error(await client.post("/1/upload", headers=headers, content=orjson.dumps({"d": [ev()]})), 401)


async def test_other_region_is_403_naming_it(client: httpx.AsyncClient) -> None:
    headers = HEADERS | {"X-CleverTap-Account-Id": "ACC-US"}
    body = assert_error(
        await client.post("/1/upload", headers=headers, content=orjson.dumps({"d": [ev()]})), 403
    )
    assert "us1" in body["error"]


async def test_bus_down_is_503_with_retry_after(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    bus.fail = True
    response = await client.post("/1/upload", headers=HEADERS, content=orjson.dumps({"d": [ev()]}))
    assert_error(response, 503)
    assert int(response.headers["retry-after"]) > 0
    bus.fail = False
    ok = await client.post("/1/upload", headers=HEADERS, content=orjson.dumps({"d": [ev()]}))
    assert ok.status_code == 200


async def test_concurrency_limit_is_429(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    bus.stall = asyncio.Event()
    body = orjson.dumps({"d": [ev()]})
    in_flight = [
        asyncio.create_task(client.post("/1/upload", headers=HEADERS, content=body)) for _ in range(2)
    ]
    await asyncio.sleep(0.05)
    refused = await client.post("/1/upload", headers=HEADERS, content=body)
    assert_error(refused, 429)
    assert refused.headers["retry-after"]
    bus.stall.set()
    assert [r.status_code for r in await asyncio.gather(*in_flight)] == [200, 200]


async def test_unknown_path_is_json_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/nope"), 404)


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/1/upload", headers=HEADERS), 405)


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json()["status"] == "ok"
    await client.post("/1/upload", headers=HEADERS, content=orjson.dumps({"d": [ev(), {"type": "x"}]}))
    text = (await client.get("/metrics")).text
    assert 'tapwire_ingest_records_total{outcome="rejected",reason="524",source="clevertap"}' in text
    assert "tapwire_http_requests_total" in text


def test_literal_params_keep_plus_and_survive_bad_percent_encoding() -> None:
    from tapwire_core.http.query_string import literal_params

    assert literal_params(b"identity=+1415&email=a%40b.c&identity=ignored") == {
        "identity": "+1415",
        "email": "a@b.c",
    }
    assert literal_params(b"%ff=1&x=%ff") == {"\ufffd": "1", "x": "\ufffd"}

"""The client's address behind trusted proxies, and nowhere else."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.http.errors import json_response
from tapwire_core.http.proxies import TrustedProxies, parse_networks
from tapwire_core.settings import Settings
from tapwire_ingest.http.segment import router as segment_router
from tests.fakes import FakeAccount, FakeAuthenticator, RecordingBus

INGRESS = "10.42.0.7"
PROXIES = TrustedProxies(parse_networks("10.42.0.0/16, 192.0.2.1, fd00::/8"))

echo = APIRouter()


@echo.get("/whoami")
async def whoami(request: Request) -> Response:
    assert request.client is not None
    return json_response({"client": request.client.host, "scheme": request.url.scheme})


@pytest.mark.parametrize(
    ("peer", "hops", "client"),
    [
        (INGRESS, ["198.51.100.4"], "198.51.100.4"),
        (INGRESS, ["198.51.100.4", "10.42.3.3"], "198.51.100.4"),  # two proxies deep
        (INGRESS, ["6.6.6.6", "198.51.100.4"], "198.51.100.4"),  # the client's own header is not believed
        (INGRESS, ["unknown", "10.42.3.3"], "10.42.3.3"),  # nothing behind an unknown hop is believed
        (INGRESS, [], INGRESS),
        ("203.0.113.5", ["198.51.100.4"], "203.0.113.5"),  # an untrusted peer's headers are ignored
        (INGRESS, ["198.51.100.4:4711"], "198.51.100.4"),
        (INGRESS, ["[2001:db8::17]:4711"], "2001:db8::17"),
        ("::ffff:10.42.0.7", ["198.51.100.4"], "198.51.100.4"),  # IPv4-mapped peer
        ("fd00::1", ["2001:db8::17"], "2001:db8::17"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    peer: str, hops: list[str], client: str
) -> None:
    assert PROXIES.client(peer, hops) == client


def test_malformed_cidrs_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="not-a-network"):
        parse_networks("10.0.0.0/8,not-a-network")
    assert parse_networks(None) == ()
    assert parse_networks(" , ") == ()


def app_with(trusted: str | None) -> FastAPI:
    context = ServiceContext(
        settings=Settings(trusted_proxies=trusted),
        authenticator=FakeAuthenticator({}, {"WK-0123456789abcdef": FakeAccount("A")}),
        readiness=_ready,
        bus_=RecordingBus(),
    )
    return create_app(context, [echo, segment_router])


async def _ready() -> dict[str, bool]:
    return {}


@pytest.fixture
async def behind_ingress() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_with("10.42.0.0/16"), client=(INGRESS, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_forwarded_and_x_forwarded_for_from_the_ingress(behind_ingress: httpx.AsyncClient) -> None:
    xff = await behind_ingress.get(
        "/whoami", headers={"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}
    )
    assert xff.json() == {"client": "198.51.100.4", "scheme": "https"}
    rfc = await behind_ingress.get("/whoami", headers={"Forwarded": 'for="[2001:db8::17]:80";proto=https'})
    assert rfc.json() == {"client": "2001:db8::17", "scheme": "https"}


async def test_without_trusted_proxies_the_headers_are_ignored() -> None:
    transport = httpx.ASGITransport(app=app_with(None), client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/whoami", headers={"X-Forwarded-For": "198.51.100.4"})
    assert response.json()["client"] == "127.0.0.1"


async def test_segment_records_the_client_not_the_ingress(behind_ingress: httpx.AsyncClient) -> None:
    bus = behind_ingress._transport.app.state.context.bus  # type: ignore[attr-defined]
    basic = {"Authorization": "Basic " + base64.b64encode(b"WK-0123456789abcdef:").decode()}
    body = {"type": "track", "event": "Viewed", "userId": "u1", "context": {"direct": True}}
    response = await behind_ingress.post(
        "/v1/track", headers=basic | {"X-Forwarded-For": "198.51.100.4"}, content=orjson.dumps(body)
    )
    assert response.status_code == 200, response.text
    (envelope,) = bus.envelopes("tapwire.events")
    assert envelope.context is not None and envelope.context["context"]["ip"] == "198.51.100.4"


async def test_a_fast_lane_sees_the_client_and_only_its_own_method_and_path() -> None:
    """``ServiceApp.add_fast_lane``: the lane answers ahead of the framework (no middleware or route of the app
    runs for it), after the trusted proxies, and only for its exact method and path."""
    app = app_with("10.42.0.0/16")
    seen: list[tuple[str, str]] = []

    async def lane(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["client"][0], scope["scheme"]))
        assert "route" not in scope  # the router never saw it
        await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"lane"})

    app.add_fast_lane("GET", "/whoami", lane)  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=(INGRESS, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        fast = await client.get(
            "/whoami", headers={"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}
        )
        routed = await client.post("/whoami", headers={"X-Forwarded-For": "198.51.100.4"})
        health = await client.get("/healthz")
    assert (fast.status_code, fast.text) == (202, "lane")
    assert seen == [("198.51.100.4", "https")]
    assert routed.status_code == 405  # another method goes to the router, as before
    assert health.status_code == 200

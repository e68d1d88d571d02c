"""Hostile and malformed Web SDK requests: clear errors, never a 500, never a script built from request data."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapwire_core.control.accounts.settings_schema import AccountSettingsPatch
from tapwire_core.control.store import ControlStore
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.http.websdk import router as websdk_router
from tests.credentials import LOOKUP_DIGESTS
from tests.fakes import FakeAuthenticator, RecordingBus
from tests.websdk.requests import event, sdk_url
from tests.websdk.sdk_encoder import SdkEncoder

ACCOUNT = "TEST-HOSTILE-1"
# The whole of a successful answer: one call with a checked id and integers, then only escaped warnings.
SAFE_SCRIPT = re.compile(
    r'window\.\$WZRK_WR&&window\.\$WZRK_WR\.s\("[A-Za-z0-9()!:@$_-]{1,75}",\d+,(true|false),\d+(,(true|false))?\);'
    r'(\nwindow\.console&&console\.warn\("(?:[^"\\<>&\n]|\\.)*"\);)*'
)


async def _ready() -> dict[str, bool]:
    return {"fake": True}


@pytest.fixture(scope="module")
def encoder() -> Iterator[SdkEncoder]:
    with SdkEncoder() as running:
        yield running


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ControlStore]:
    control = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await control.start()
    await control.upsert_account(
        ACCOUNT, passcode="passcode-hostile-0123", write_key="writekey-hostile-0123", region="eu1"
    )
    # Turned off as the console's settings page and PATCH /account/v1/settings store it.
    await control.upsert_account(
        "TEST-OFF-1",
        passcode="passcode-off-01234567",
        write_key="writekey-off-01234567",
        region="eu1",
        settings=AccountSettingsPatch(client_ingestion=False).changes(),
    )
    await control.upsert_account(
        "TEST-ORIGIN-1",
        passcode="passcode-origin-012345",
        write_key="writekey-origin-012345",
        region="eu1",
        settings={"cors_origins": ["https://shop.example"]},
    )
    await control.upsert_account(
        "TEST-SLOW-1",
        passcode="passcode-slow-0123456",
        write_key="writekey-slow-0123456",
        region="eu1",
        settings={"client_sdk_requests_per_s": 2},
    )
    try:
        yield control
    finally:
        await control.close()


def _app(store: ControlStore, bus: RecordingBus, **overrides: float) -> FastAPI:
    defaults = {"sdk_requests_per_s_per_address": 1000.0, "sdk_burst_per_address": 1000.0}
    settings = Settings(bus_timeout_s=0.5).model_copy(update=defaults | overrides)
    context = ServiceContext(
        settings=settings, authenticator=FakeAuthenticator({}), readiness=_ready, bus_=bus, store_=store
    )
    return create_app(context, [websdk_router])


def _client(store: ControlStore, bus: RecordingBus, **overrides: float) -> httpx.AsyncClient:
    app = _app(store, bus, **overrides)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://eu1.t.example")


@pytest.fixture
async def client(store: ControlStore) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(store, RecordingBus()) as c:
        yield c


def assert_error(response: httpx.Response, status: int, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "fail" and body["code"] == status and body["message"] == body["error"]
    assert fragment in body["error"]


@pytest.mark.parametrize(
    ("query", "status", "fragment"),
    [
        ("", 400, "type"),
        ("t=96&type=push", 400, "d is missing"),
        ("t=96&type=evil&d=N4IghiBcCMC%2BQA%3D%3D", 400, "type"),
        ("t=96&type=push&d=%%%%", 400, "not a compressed payload"),
        ("t=96&type=push&d=" + "A" * 40, 400, "not a compressed payload"),
        ("t=96&type=push&d=N4IghiBcCMC", 400, "d"),
        ("t=96&type=push&d=%3Cscript%3Ealert(1)%3C%2Fscript%3E", 400, "not a compressed payload"),
    ],
)
async def test_malformed_requests_get_clear_errors(
    client: httpx.AsyncClient, query: str, status: int, fragment: str
) -> None:
    assert_error(await client.get("/a?" + query), status, fragment)


async def test_a_one_megabyte_query_string_is_413(store: ControlStore) -> None:
    """Sent as ASGI directly: HTTP clients refuse to build such a URL (the server test sends it over a socket)."""
    app = _app(store, RecordingBus())
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/a",
        "raw_path": b"/a",
        "root_path": "",
        "query_string": b"t=96&type=push&d=" + b"x" * 1024 * 1024,
        "headers": [(b"host", b"eu1.t.example")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 443),
        "state": {},
    }
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    assert sent[0]["status"] == 413
    body = orjson.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["code"] == 413 and "Query string" in body["error"]


async def test_payloads_that_are_not_objects_or_name_no_account(
    client: httpx.AsyncClient, encoder: SdkEncoder
) -> None:
    for text, status in (
        ('"just a string"', 400),
        ("[1,2]", 400),
        ("{not json", 400),
        ('{"type":"event"}', 401),
    ):
        d = quote(encoder.encode(text), safe="")
        assert_error(await client.get(f"/a?t=96&type=push&d={d}"), status)


async def test_expansion_bomb_is_refused_before_it_expands(
    client: httpx.AsyncClient, encoder: SdkEncoder
) -> None:
    d = quote(encoder.encode('{"id":"' + "a" * 2_000_000 + '"}'), safe="")
    assert len(d) < 64 * 1024
    assert_error(await client.get(f"/a?t=96&type=push&d={d}"), 413, "expands")


async def test_script_injection_never_reaches_the_script(
    client: httpx.AsyncClient, encoder: SdkEncoder
) -> None:
    hostile = '");alert(1);//'
    # In the device id: refused outright.
    assert_error(
        await client.get(sdk_url(encoder, "push", event("E"), account_id=ACCOUNT, device_id=hostile)),
        400,
        "device id",
    )
    # In the request number: ignored, never echoed.
    url = sdk_url(
        encoder, "push", event("E"), account_id=ACCOUNT, device_id="dev", extra={"rn": "1);alert(1)//"}
    )
    response = await client.get(url)
    assert response.status_code == 200 and SAFE_SCRIPT.fullmatch(response.text), response.text
    # In a property name that gets the record refused: the reason is echoed, escaped.
    bad = {"</script><script>alert(1)</script>" + "k" * 200: 1}
    response = await client.get(
        sdk_url(encoder, "push", event("E", bad), account_id=ACCOUNT, device_id="dev")
    )
    assert response.status_code == 200 and SAFE_SCRIPT.fullmatch(response.text), response.text
    assert "<" not in response.text and "alert(1)</" not in response.text


async def test_accounts_that_take_no_client_sdk_requests(
    client: httpx.AsyncClient, encoder: SdkEncoder
) -> None:
    assert_error(
        await client.get(sdk_url(encoder, "push", event("E"), account_id="TEST-OFF-1")), 403, "turned off"
    )
    assert_error(await client.get(sdk_url(encoder, "push", event("E"), account_id="x" * 65)), 401)


async def test_allowed_origins_are_checked_against_origin_and_referer(
    client: httpx.AsyncClient, encoder: SdkEncoder
) -> None:
    url = sdk_url(encoder, "push", event("E"), account_id="TEST-ORIGIN-1", device_id="dev")
    assert (await client.get(url, headers={"referer": "https://shop.example/cart"})).status_code == 200
    assert (await client.get(url, headers={"origin": "https://shop.example"})).status_code == 200
    assert_error(await client.get(url, headers={"referer": "https://evil.example/"}), 403, "evil.example")
    refused = await client.get(url, headers={"origin": "https://evil.example"})
    assert_error(refused, 403, "evil.example")
    assert "access-control-allow-origin" not in refused.headers
    assert_error(await client.get(url), 403, "names none")


async def test_rate_limits_per_address_and_per_account(store: ControlStore, encoder: SdkEncoder) -> None:
    async with _client(
        store, RecordingBus(), sdk_requests_per_s_per_address=1.0, sdk_burst_per_address=3.0
    ) as limited:
        url = sdk_url(encoder, "ping", {}, account_id=ACCOUNT, device_id="dev")
        statuses = [(await limited.get(url)).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        refused = await limited.get(url)
        assert_error(refused, 429, "address")
        assert int(refused.headers["retry-after"]) >= 1
    async with _client(store, RecordingBus()) as client:
        url = sdk_url(encoder, "ping", {}, account_id="TEST-SLOW-1", device_id="dev")
        statuses = [(await client.get(url)).status_code for _ in range(6)]
        assert statuses == [200, 200, 200, 200, 429, 429]  # burst of twice the account's rate of 2/s
        assert_error(await client.get(url), 429, "TEST-SLOW-1")


async def test_a_bus_outage_is_503_with_retry_after(store: ControlStore, encoder: SdkEncoder) -> None:
    bus = RecordingBus()
    bus.fail = True
    async with _client(store, bus) as client:
        response = await client.get(sdk_url(encoder, "push", event("E"), account_id=ACCOUNT, device_id="dev"))
        assert_error(response, 503)
        assert response.headers["retry-after"]


query_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(["t", "type", "d", "gc", "rn", "i", "sn", "s", "optOut", "useIP", "origin", "arp"]),
        query_values,
        max_size=8,
    ),
    payload=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "g",
                    "s",
                    "type",
                    "evtName",
                    "evtData",
                    "profile",
                    "rc",
                    "isOUL",
                    "endpoint",
                    "keys",
                    "action",
                ]
            ),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                lambda inner: (
                    st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
                ),
                max_leaves=8,
            ),
            max_size=8,
        ),
    ),
    kind=st.sampled_from(["page", "push", "ping", "data"]),
)
async def test_fuzzed_requests_never_fail_the_server(
    client: httpx.AsyncClient,
    encoder: SdkEncoder,
    params: dict[str, str],
    payload: dict[str, object] | None,
    kind: str,
) -> None:
    if payload is not None:
        payload = {**payload, "id": ACCOUNT}
        params = {**params, "type": kind, "d": encoder.encode(__import__("json").dumps(payload))}
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    response = await client.get("/a?" + query)
    assert response.status_code < 500 or response.status_code == 503, response.text
    if response.status_code == 200:
        assert SAFE_SCRIPT.fullmatch(response.text), response.text
    else:
        assert response.headers["content-type"] == "application/json"

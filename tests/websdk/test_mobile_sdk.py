"""``/hello`` and ``/a1`` over an in-memory bus and a SQLite control store, with requests built as the Android
and iOS SDKs build them (``tests/websdk/mobile_requests.py`` cites the source of each piece)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tapwire_core.control.store import ControlStore
from tapwire_core.envelope import Envelope
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.http.mobile_sdk import router as mobile_router
from tests.credentials import LOOKUP_DIGESTS
from tests.fakes import FakeAccount, FakeAuthenticator, RecordingBus
from tests.websdk import mobile_requests as sdk

ACCOUNT, TOKEN = "TEST-APP-001", "writekey-app-token-0123"
SESSION = 1_765_000_000


async def _ready() -> dict[str, bool]:
    return {"fake": True}


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def client(tmp_path: Path, bus: RecordingBus) -> AsyncIterator[httpx.AsyncClient]:
    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    await store.upsert_account(ACCOUNT, passcode="passcode-app-0123456", write_key=TOKEN, region="eu1")
    auth = FakeAuthenticator(
        {},
        write_keys={
            TOKEN: FakeAccount(ACCOUNT),
            "writekey-us-app-0123": FakeAccount("TEST-US-APP", region="us1"),
        },
    )
    settings = Settings(bus_timeout_s=0.5, sdk_max_body_bytes=64 * 1024)
    context = ServiceContext(settings=settings, authenticator=auth, readiness=_ready, bus_=bus, store_=store)
    app = create_app(context, [mobile_router])
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://eu1.t.example"
        ) as c:
            yield c
    finally:
        await store.close()


def published(bus: RecordingBus, kind: str | None = None) -> list[Envelope]:
    return [e for e in bus.envelopes("tapwire.events") if kind is None or e.kind == kind]


async def send(
    client: httpx.AsyncClient, items: list[dict[str, object]], *, os: str = "Android"
) -> httpx.Response:
    return await client.post(
        "/a1",
        params=sdk.query(ACCOUNT, os=os),
        headers=sdk.headers(ACCOUNT, TOKEN),
        content=orjson.dumps(items),
    )


async def test_the_handshake_names_the_host_the_sdk_used(client: httpx.AsyncClient) -> None:
    # CtApi.performHandshakeForDomain (Android, no body) and CTRequestFactory.helloRequestWithConfig (iOS, GET).
    for method in ("GET", "POST"):
        response = await client.request(
            method, "/hello", params=sdk.query(ACCOUNT), headers=sdk.headers(ACCOUNT, TOKEN)
        )
        assert response.status_code == 200, response.text
        assert response.headers["x-wzrk-rd"] == "eu1.t.example"
        assert response.headers["x-wzrk-spiky-rd"] == "eu1.t.example"
        assert response.headers["x-wzrk-mute"] == "false"
    wrong = await client.get("/hello", headers=sdk.headers(ACCOUNT, "not-the-token"))
    assert wrong.status_code == 401 and wrong.json()["code"] == 401
    foreign = await client.get("/hello", headers=sdk.headers("TEST-US-APP", "writekey-us-app-0123"))
    assert foreign.status_code == 403 and "us1" in foreign.json()["error"]


async def test_an_android_queue_is_stored_with_the_device_and_its_login(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    header = sdk.meta_header(ACCOUNT, TOKEN, "__8f3ac5d2b1e04c7a9d6e2f1a0b3c4d5e")
    items = sdk.body(
        header,
        sdk.event("App Launched", {"Build": "42"}, session=SESSION),
        sdk.event("Product Viewed", {"Product": "Shoe", "Price": 40}, session=SESSION),
        sdk.profile({"Identity": "ann", "Email": "ann@example.org", "Name": "Ann"}, session=SESSION),
        sdk.push_token("fcm-token-ann", "fcm", session=SESSION),
        sdk.item("ping", {}, session=SESSION),
    )
    response = await send(client, items)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success", "processed": 4, "unprocessed": []}
    by_name = {e.name: e for e in published(bus, "event")}
    launched, viewed = by_name["App Launched"], by_name["Product Viewed"]
    (stored_profile,) = published(bus, "profile")
    (token,) = published(bus, "token")
    device = "__8f3ac5d2b1e04c7a9d6e2f1a0b3c4d5e"
    assert (launched.name, launched.ids.object_id) == ("App Launched", device)
    assert viewed.properties == {"Product": "Shoe", "Price": 40}
    assert viewed.context == {
        "os": "Android",
        "app_version": "3.1.0",
        "os_version": "14",
        "make": "Google",
        "model": "Pixel 8",
        "session_id": SESSION,
    }
    assert viewed.client_ts // 1000 == items[2]["ep"]
    assert stored_profile.ids.identity == "ann" and stored_profile.ids.object_id == device
    assert token.kind == "token" and token.properties == {"id": "fcm-token-ann", "type": "fcm"}
    aliases = {e.properties["alias_key"]: e.properties["canonical_key"] for e in published(bus, "alias")}
    assert aliases == {f"o:{device}": "i:ann", "e:ann@example.org": "i:ann"}

    # The SDK resends a batch it got no 200 for: the same items keep their ids.
    again = await send(client, items)
    assert again.status_code == 200
    ids = [e.event_id for e in published(bus) if e.kind != "alias"]
    assert len(ids) == 8 and len(set(ids)) == 4


async def test_screen_views_and_deep_links_are_page_views_as_on_the_web_and_pings_store_nothing(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    header = sdk.meta_header(ACCOUNT, TOKEN, "__pages")
    # CleverTapAPI.recordScreen → AnalyticsManager.recordPageEventWithExtras(null): a page item named by ``n``;
    # AnalyticsManager.pushDeepLink: the deep link's campaign (UriHelper.getUrchinFromUri), referrer, install.
    screen = {**sdk.item("page", {}, session=SESSION), "n": "CartScreen", "pg": 3}
    deep_link = {
        **sdk.item(
            "page",
            {
                "us": "newsletter",
                "um": "email",
                "uc": "spring",
                "referrer": "shop://open/cart?utm_source=newsletter&email=ann@example.org",
                "install": True,
            },
            session=SESSION,
        ),
        "n": "HomeScreen",
    }
    response = await send(client, sdk.body(header, screen, deep_link, sdk.item("ping", {}, session=SESSION)))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "success", "processed": 2, "unprocessed": []}
    first, second = published(bus)
    assert (first.kind, first.name, first.ids.object_id) == ("event", "Page Viewed", "__pages")
    assert first.properties == {"Session ID": SESSION, "Page": "CartScreen", "Page Count": 3}
    assert first.context is not None and first.context["session_id"] == SESSION
    assert second.properties == {
        "Session ID": SESSION,
        "Page": "HomeScreen",
        "Page Count": 1,
        "Referrer": "shop://open/cart",
        "UTM Source": "newsletter",
        "UTM Medium": "email",
        "UTM Campaign": "spring",
        "Install": True,
    }
    # Session properties, as CQL's session_properties read them, like a browser's page load.
    assert second.context is not None
    assert second.context["referrer"] == "shop://open/cart"
    assert second.context["campaign"] == {"source": "newsletter", "medium": "email", "name": "spring"}
    assert second.context["os"] == "Android" and second.context["model"] == "Pixel 8"


async def test_an_ios_apns_token(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    header = sdk.meta_header(ACCOUNT, TOKEN, "-A1B2C3D4E5F6", os_name="iOS")
    response = await send(
        client, sdk.body(header, sdk.push_token("apns-token-ann", "apns", session=SESSION)), os="iOS"
    )
    assert response.status_code == 200, response.text
    (token,) = published(bus, "token")
    assert token.properties == {"id": "apns-token-ann", "type": "apns"}
    assert token.context is not None and token.context["os"] == "iOS"


async def test_refused_items_are_reported_and_the_rest_stored(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    header = sdk.meta_header(ACCOUNT, TOKEN, "__dev2")
    response = await send(
        client,
        sdk.body(
            header,
            sdk.event("", {}, session=SESSION),
            sdk.event("Fine", {}, session=SESSION),
            sdk.push_token("tok", "carrier-pigeon", session=SESSION),
        ),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "partial" and body["processed"] == 1
    assert [u["code"] for u in body["unprocessed"]] == [509, 534]
    assert [e.name for e in published(bus)] == ["Fine"]


async def test_opt_out_through_set_opt_out_stops_storage(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    header = sdk.meta_header(ACCOUNT, TOKEN, "__dev3")
    opt_out = sdk.profile(
        {"ct_optout": True, "ct_allow_sys_events_and_communication": False}, session=SESSION
    )
    response = await send(
        client,
        sdk.body(
            header, sdk.event("Before", {}, session=SESSION), opt_out, sdk.event("After", {}, session=SESSION)
        ),
    )
    assert response.status_code == 200, response.text
    await send(client, sdk.body(header, sdk.event("Later", {}, session=SESSION)))
    assert [e.name for e in published(bus)] == ["Before"]
    opt_in = sdk.profile({"ct_optout": False, "ct_allow_sys_events_and_communication": True}, session=SESSION)
    await send(client, sdk.body(header, opt_in, sdk.event("Back", {}, session=SESSION)))
    assert sorted(e.name for e in published(bus)) == ["Back", "Before"]


@pytest.mark.parametrize(
    ("content", "status", "fragment"),
    [
        (b"{}", 400, "meta header"),
        (b"[]", 400, "meta header"),
        (b'[{"type":"event"}]', 400, "meta header"),
        (b'[{"type":"meta"}]', 400, "device id"),
        (b'[{"type":"meta","g":"__d","id":"OTHER-ACCOUNT"}]', 400, "another account"),
        (b"[not json", 400, "Malformed JSON"),
        (
            b"[" + b'{"type":"meta","g":"__d"},' + b'{"type":"ping"},' * 40_000 + b'{"type":"ping"}]',
            413,
            "at most 65536 bytes",
        ),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, status: int, fragment: str
) -> None:
    response = await client.post("/a1", headers=sdk.headers(ACCOUNT, TOKEN), content=content)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


async def test_credentials_are_checked_before_the_body_is_read(client: httpx.AsyncClient) -> None:
    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):
            yield b"x" * 65536

    response = await client.post("/a1", headers=sdk.headers(ACCOUNT, "wrong"), content=endless())
    assert response.status_code == 401


async def test_an_encrypted_queue_gets_the_status_that_makes_the_sdk_resend_it_plain(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    # NetworkManager.sendQueueApi with encryption in transit on: EncryptedSendQueueRequestBody.toJsonString.
    encrypted = {"itp": "c2VjcmV0", "itk": "a2V5", "itv": "aXY="}
    response = await client.post("/a1", headers=sdk.headers(ACCOUNT, TOKEN), content=orjson.dumps(encrypted))
    # handleSendQueueResponseError: 419 sets isRelaxNetwork, so the next send is unencrypted.
    assert response.status_code == 419 and response.json()["code"] == 419
    assert published(bus) == []

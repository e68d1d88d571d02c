"""The Segment endpoints over an in-memory bus and a SQLite identity graph: the compatibility checklist."""

from __future__ import annotations

import asyncio
import base64
import gzip
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tapwire_core.control.store import ControlStore
from tapwire_core.envelope import Envelope
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.identity import IdentityGraph
from tapwire_core.settings import Settings
from tapwire_ingest.http.identity import router as identity_router
from tapwire_ingest.http.segment import router as segment_router
from tapwire_ingest.http.upload import router as upload_router
from tests.credentials import LOOKUP_DIGESTS
from tests.fakes import FakeAccount, FakeAuthenticator, RecordingBus

KEY = "WKsegment123"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
ACCOUNT = FakeAccount("ACC-1")
LOCKED = FakeAccount("ACC-LOCKED", settings={"cors_origins": ["https://shop.example"]})
SENT_AT = "2026-11-29T01:19:52.266284+00:00"


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def graph(tmp_path: Path) -> AsyncIterator[IdentityGraph]:
    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    for account in ("ACC-1", "ACC-LOCKED", "ACC-1B"):
        await store.upsert_account(
            account, passcode="passcode-0123456789", write_key=f"writekey-{account}-0123456789", region="eu1"
        )
    try:
        yield IdentityGraph(store.engine)
    finally:
        await store.close()


@pytest.fixture
def context(bus: RecordingBus) -> ServiceContext:
    settings = Settings(bus_timeout_s=0.2, segment_max_batch_events=10, upload_concurrency=4)
    auth = FakeAuthenticator(
        {"ACC-1": ("secret", ACCOUNT)},
        write_keys={
            KEY: ACCOUNT,
            "WK-other-source": ACCOUNT,
            "WK-us": FakeAccount("ACC-US", region="us1"),
            "WK-locked": LOCKED,
        },
    )
    return ServiceContext(settings=settings, authenticator=auth, readiness=_ready, bus_=bus)


@pytest.fixture
async def client(context: ServiceContext, graph: IdentityGraph) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(context, [segment_router, upload_router, identity_router])
    app.state.identity_graph = graph
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def _ready() -> dict[str, bool]:
    return {"fake": True}


def track(i: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": "user-1",
        "anonymousId": "anon-1",
        "properties": {"revenue": 9.5, "i": i},
        "messageId": f"m-{i}",
        "timestamp": "2026-11-29T01:19:51.765+00:00",
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        "integrations": {},
    } | extra


def published(bus: RecordingBus, kind: str | None = None) -> list[Envelope]:
    envelopes = bus.envelopes("tapwire.events")
    return [e for e in envelopes if kind is None or e.kind == kind]


def dead_letters(bus: RecordingBus) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in bus.published.get("tapwire.events.dlq", [])]


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == status and body["message"] and body["message"] == body["error"]
    return body


async def test_segment_sdk_batch_is_stored_with_exactly_200(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    body = {
        "batch": [
            track(1),
            {
                "type": "identify",
                "userId": "user-1",
                "anonymousId": None,
                "traits": {"email": "a@example.org"},
                "messageId": "m-id",
                "integrations": {},
                "context": {},
            },
            {
                "type": "page",
                "userId": "user-1",
                "name": "Home",
                "category": "Docs",
                "anonymousId": None,
                "properties": {"url": "http://127.0.0.1/home"},
                "messageId": "m-page",
            },
            {
                "type": "alias",
                "previousId": "anon-1",
                "userId": "user-1",
                "anonymousId": None,
                "messageId": "m-a",
            },
        ],
        "sentAt": SENT_AT,
        "writeKey": KEY,
    }
    response = await client.post("/v1/batch", headers=BASIC, content=orjson.dumps(body))
    assert response.status_code == 200, response.text
    events = published(bus, "event")
    assert [(e.name, e.ids.identity, e.ids.anonymous_id) for e in events] == [
        ("Order Completed", "user-1", "anon-1"),
        ("Page Viewed", "user-1", None),
    ]
    assert events[0].properties == {"revenue": 9.5, "i": 1}
    assert (
        events[0].context is not None
        and events[0].context["context"]["library"]["name"] == "analytics-python"
    )
    assert events[1].properties == {"url": "http://127.0.0.1/home", "name": "Home", "category": "Docs"}
    (profile,) = published(bus, "profile")
    assert profile.properties == {"Email": "a@example.org"} and profile.ids.email == "a@example.org"
    aliases = {(e.properties["alias_key"], e.properties["canonical_key"]) for e in published(bus, "alias")}
    assert ("a:anon-1", "i:user-1") in aliases
    assert ("e:a@example.org", "i:user-1") in aliases
    assert all(e.source == "segment" for e in events)


async def test_rudderstack_gzip_body_without_write_key_and_context_traits(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    body = {
        "batch": [
            {
                "type": "identify",
                "userId": "user-2",
                "anonymousId": None,
                "channel": "server",
                "context": {"traits": {"email": "b@example.org", "address": {"city": "Oslo"}}},
                "integrations": {"All": True},
                "messageId": "r-1",
            }
        ],
        "sentAt": SENT_AT,
    }
    headers = BASIC | {"Content-Encoding": "gzip", "Content-Type": "application/json; charset=utf-8"}
    response = await client.post("/v1/batch", headers=headers, content=gzip.compress(orjson.dumps(body)))
    assert response.status_code == 200, response.text
    (profile,) = published(bus, "profile")
    assert profile.properties == {"Email": "b@example.org", "address.city": "Oslo"}
    assert profile.context is not None and profile.context["channel"] == "server"


async def test_write_key_in_body_header_wins_and_bare_key_works(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    assert (
        await client.post("/v1/track", content=orjson.dumps(track() | {"writeKey": KEY}))
    ).status_code == 200
    bare = {"Authorization": "Basic " + base64.b64encode(KEY.encode()).decode()}
    assert (await client.post("/v1/track", headers=bare, content=orjson.dumps(track(2)))).status_code == 200
    wrong_body = track(3) | {"writeKey": "nope"}
    assert (
        await client.post("/v1/track", headers=BASIC, content=orjson.dumps(wrong_body))
    ).status_code == 200
    assert_error(await client.post("/v1/track", content=orjson.dumps(track())), 401)
    bearer = {"Authorization": "Bearer oauth-token"}
    with_key = orjson.dumps(track(4) | {"writeKey": KEY})
    assert (await client.post("/v1/track", headers=bearer, content=with_key)).status_code == 200
    assert_error(await client.post("/v1/track", headers=bearer, content=orjson.dumps(track())), 401)
    bad = {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()}
    assert (
        assert_error(await client.post("/v1/track", headers=bad, content=b"{}"), 401)["message"]
        == "Invalid write key"
    )
    us = {"Authorization": "Basic " + base64.b64encode(b"WK-us:").decode()}
    assert (
        "us1"
        in assert_error(await client.post("/v1/track", headers=us, content=orjson.dumps(track())), 403)[
            "message"
        ]
    )
    assert len(published(bus, "event")) == 4


async def test_invalid_messages_are_dead_lettered_and_neighbours_kept(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    batch = [
        track(1),
        {"type": "track", "userId": "u", "messageId": "no-event"},
        {"type": "track", "event": "X", "messageId": "no-user"},
        {"type": "group", "userId": "u", "messageId": "no-group"},
        {"type": "alias", "userId": "u", "messageId": "no-previous"},
        {"type": "launch", "userId": "u"},
        track(2, properties={"blob": "x" * 40_000}),
        7,
    ]
    response = await client.post("/v1/batch", headers=BASIC, content=orjson.dumps({"batch": batch}))
    assert response.status_code == 200
    assert [e.properties["i"] for e in published(bus, "event")] == [1]
    codes = [d["code"] for d in dead_letters(bus)]
    assert codes == [
        "missing_event",
        "no_user_anon_id",
        "missing_group_id",
        "missing_alias_ids",
        "invalid_type",
        "event_too_large",
        "invalid_message",
    ]
    assert dead_letters(bus)[0]["message"]["messageId"] == "no-event"
    headers = dict(bus.published["tapwire.events.dlq"][0].headers)
    assert headers["tapwire-reason-category"] == b"segment:missing_event"


async def test_single_call_paths_imply_the_type_and_refuse_invalid_calls(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    screen = {"userId": "u9", "name": "Settings", "messageId": "s-1"}
    assert (await client.post("/v1/screen", headers=BASIC, content=orjson.dumps(screen))).status_code == 200
    group = {"userId": "u9", "groupId": 42, "traits": {"plan": "enterprise"}, "messageId": "g-1"}
    assert (await client.post("/v1/g", headers=BASIC, content=orjson.dumps(group))).status_code == 200
    (event,) = published(bus, "event")
    assert event.name == "Screen Viewed" and event.properties == {"name": "Settings"}
    group_profile, membership = published(bus, "profile")
    assert group_profile.ids.user_key() == "grp:42" and group_profile.properties == {"plan": "enterprise"}
    assert membership.ids.identity == "u9" and membership.properties == {"Groups": {"$add": ["42"]}}
    assert group_profile.event_id == membership.event_id + ":group"
    body = assert_error(await client.post("/v1/track", headers=BASIC, content=b'{"event":"X"}'), 400)
    assert "neither userId nor anonymousId" in body["message"]
    assert [d["code"] for d in dead_letters(bus)] == ["no_user_anon_id"]


async def test_message_id_is_the_dedupe_key_per_write_key(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    first = orjson.dumps({"batch": [track(1)], "sentAt": SENT_AT})
    retry = orjson.dumps({"batch": [track(1)], "sentAt": "2026-11-29T01:19:59.000+00:00"})
    other_key = {"Authorization": "Basic " + base64.b64encode(b"WK-other-source:").decode()}
    for headers, body in ((BASIC, first), (BASIC, retry), (other_key, first)):
        assert (await client.post("/v1/batch", headers=headers, content=body)).status_code == 200
    ids = [e.event_id for e in published(bus, "event")]
    assert ids[0] == ids[1] and ids[0] != ids[2]


async def test_clock_skew_is_corrected_from_sent_at(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    # The device clock runs one hour fast: the event happened 2 s before the request left the device.
    message = track(1, timestamp="2026-11-29T03:00:00Z", sentAt="2026-11-29T03:00:02.000Z")
    assert (
        await client.post("/v1/batch", headers=BASIC, content=orjson.dumps({"batch": [message]}))
    ).status_code == 200
    without_sent_at = track(2, timestamp="2020-01-01T00:00:00.5+02:00")
    no_timestamp = track(3, timestamp=None)
    await client.post(
        "/v1/batch", headers=BASIC, content=orjson.dumps({"batch": [without_sent_at, no_timestamp]})
    )
    skewed, historic, stamped = published(bus, "event")
    assert skewed.received_ts - skewed.client_ts == 2000
    assert historic.client_ts == 1_577_829_600_500
    assert stamped.client_ts == stamped.received_ts
    assert skewed.context is not None and skewed.context["originalTimestamp"] == "2026-11-29T03:00:00Z"


async def test_wrapper_context_and_integrations_merge_into_items(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    body = {
        "batch": [track(1, context={"ip": "10.0.0.1"}, integrations={"Mixpanel": False})],
        "context": {"ip": "192.0.2.1", "locale": "nb-NO"},
        "integrations": {"All": True},
    }
    assert (await client.post("/v1/batch", headers=BASIC, content=orjson.dumps(body))).status_code == 200
    (event,) = published(bus, "event")
    assert event.context is not None
    assert event.context["context"] == {"ip": "10.0.0.1", "locale": "nb-NO"}
    assert event.context["integrations"] == {"All": True, "Mixpanel": False}


async def test_direct_context_records_the_callers_address(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    message = track(1, context={"direct": True})
    assert (await client.post("/v1/track", headers=BASIC, content=orjson.dumps(message))).status_code == 200
    (event,) = published(bus, "event")
    assert event.context is not None and event.context["context"]["ip"] == "127.0.0.1"


async def test_numeric_ids_are_coerced_and_batches_past_the_limit_lose_only_the_excess(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    batch = [track(i, userId=1000 + i, messageId=i) for i in range(12)]
    assert (
        await client.post("/v1/batch", headers=BASIC, content=orjson.dumps({"batch": batch}))
    ).status_code == 200
    # Order holds per user (per partition), not across users.
    assert sorted(e.ids.identity or "" for e in published(bus, "event")) == sorted(
        str(1000 + i) for i in range(10)
    )
    assert [d["code"] for d in dead_letters(bus)] == ["too_many_events", "too_many_events"]


async def test_final_errors_carry_code_and_message(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/v1/batch", headers=BASIC, content=b"{not json"), 400)
    assert_error(await client.post("/v1/batch", headers=BASIC, content=b'{"batch": {}}'), 400)
    assert_error(await client.post("/v1/batch", headers=BASIC, content=b"[]"), 400)
    big = orjson.dumps({"batch": [track(i, properties={"pad": "y" * 30_000}) for i in range(20)]})
    assert_error(await client.post("/v1/batch", headers=BASIC, content=big), 413)
    bomb = gzip.compress(b'{"batch": [' + b" " * (2 * 1024 * 1024) + b"]}")
    assert_error(
        await client.post("/v1/batch", headers=BASIC | {"Content-Encoding": "gzip"}, content=bomb), 413
    )
    single = orjson.dumps(track(properties={"pad": "z" * 40_000}))
    assert_error(await client.post("/v1/track", headers=BASIC, content=single), 413)


async def test_bus_outage_is_503_with_retry_after(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    bus.fail = True
    response = await client.post("/v1/batch", headers=BASIC, content=orjson.dumps({"batch": [track()]}))
    assert_error(response, 503)
    assert response.headers["Retry-After"] == "5"
    bus.fail = False
    # The link was not remembered while the publish failed: the retry publishes its alias row again.
    response = await client.post("/v1/batch", headers=BASIC, content=orjson.dumps({"batch": [track()]}))
    assert response.status_code == 200
    assert [e.properties["alias_key"] for e in published(bus, "alias")] == ["a:anon-1"]


async def test_concurrency_limit_is_429_with_retry_after(
    client: httpx.AsyncClient, bus: RecordingBus, context: ServiceContext
) -> None:
    context.settings.bus_timeout_s = 60  # the stalled publishes wait for the test, not for a timeout
    bus.stall = asyncio.Event()
    body = orjson.dumps({"batch": [track(anonymousId=None)]})
    in_flight = [asyncio.create_task(client.post("/v1/batch", headers=BASIC, content=body)) for _ in range(4)]
    for _ in range(30_000):  # until all four hold their slot (bounded: a hang fails instead of blocking)
        if context.limiter.in_flight("ACC-1") == 4:
            break
        await asyncio.sleep(0.001)
    else:
        raise AssertionError("the four requests never held their slots")
    refused = await client.post("/v1/batch", headers=BASIC, content=body)
    assert_error(refused, 429)
    assert refused.headers["Retry-After"] == "1"
    bus.stall.set()
    assert [r.status_code for r in await asyncio.gather(*in_flight)] == [200] * 4


async def test_browser_beacon_and_cors(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    origin = {"Origin": "https://any.example"}
    pre = await client.options(
        "/v1/t",
        headers=origin
        | {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "https://any.example"
    assert pre.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert "Access-Control-Allow-Credentials" not in pre.headers
    beacon = orjson.dumps(track() | {"writeKey": KEY})
    response = await client.post(
        "/v1/t", headers=origin | {"Content-Type": "text/plain;charset=UTF-8"}, content=beacon
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://any.example"
    assert "set-cookie" not in response.headers
    locked = {"Authorization": "Basic " + base64.b64encode(b"WK-locked:").decode()}
    refused = await client.post("/v1/t", headers=locked | origin, content=orjson.dumps(track()))
    assert_error(refused, 403)
    assert "Access-Control-Allow-Origin" not in refused.headers
    allowed = await client.post(
        "/v1/t", headers=locked | {"Origin": "https://shop.example"}, content=orjson.dumps(track(5))
    )
    assert allowed.status_code == 200
    unauthorised = await client.post("/v1/t", headers=origin, content=b"{}")
    assert_error(unauthorised, 401)
    assert unauthorised.headers["Access-Control-Allow-Origin"] == "https://any.example"
    assert len(published(bus, "event")) == 2


async def test_settings_document_points_analytics_js_here(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/projects/{KEY}/settings", headers={"Origin": "http://page.example"})
    assert response.status_code == 200
    segment = response.json()["integrations"]["Segment.io"]
    assert segment == segment | {"apiKey": KEY, "apiHost": "t/v1", "protocol": "http"}
    assert response.headers["Access-Control-Allow-Origin"] == "http://page.example"
    assert_error(await client.get("/v1/projects/unknown/settings"), 404)


async def test_clevertap_login_links_identity_and_object_id(
    client: httpx.AsyncClient, bus: RecordingBus
) -> None:
    headers = {"X-CleverTap-Account-Id": "ACC-1", "X-CleverTap-Passcode": "secret"}
    records = [
        {"type": "event", "objectId": "guid-1", "evtName": "Viewed", "evtData": {}},
        {"type": "event", "identity": "ann", "objectId": "guid-1", "evtName": "Login", "evtData": {}},
    ]
    assert (await client.post("/1/upload", headers=headers, json={"d": records})).status_code == 200
    aliases = [(e.properties["alias_key"], e.properties["canonical_key"]) for e in published(bus, "alias")]
    assert aliases == [("o:guid-1", "i:ann")]

    # Two customer ids merged by an explicit alias are split again by a demerge of one of them.
    alias = {"type": "alias", "userId": "ann", "previousId": "bob", "messageId": "al-1"}
    bob = {"type": "identify", "userId": "bob", "anonymousId": "bob-laptop", "messageId": "id-bob"}
    batch = orjson.dumps({"batch": [bob, alias]})
    assert (await client.post("/v1/batch", headers=BASIC, content=batch)).status_code == 200
    merged = {e.properties["alias_key"]: e.properties["canonical_key"] for e in published(bus, "alias")}
    assert merged["i:bob"] == "i:ann" and merged["a:bob-laptop"] == "i:ann"

    before = len(published(bus, "alias"))
    demerged = await client.post("/1/demerge/profiles.json", headers=headers, json={"identities": ["bob"]})
    assert demerged.status_code == 200 and demerged.json()["status"] == "success"
    rows = [e.properties for e in published(bus, "alias")][before:]
    assert {(r["alias_key"], r["canonical_key"], r["active"]) for r in rows} == {
        ("i:bob", "i:bob", 0),
        ("a:bob-laptop", "i:bob", 1),
    }
    assert_error(await client.post("/1/demerge/profiles.json", headers=headers, json={"identities": []}), 400)


async def test_disassociate_in_clevertap_shape(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    headers = {"X-CleverTap-Account-Id": "ACC-1", "X-CleverTap-Passcode": "secret"}
    profile = {"type": "profile", "identity": "cy", "profileData": {"Phone": "+14155551234"}}
    assert (await client.post("/1/upload", headers=headers, json={"d": [profile]})).status_code == 200
    body = {"d": [{"type": "phone", "value": "+14155551234"}, {"type": "fax", "value": "1"}]}
    response = await client.post("/1/disassociate", headers=headers, json=body)
    assert response.status_code == 200
    assert response.json()["status"] == "partial" and response.json()["processed"] == 1
    last = published(bus, "alias")[-1].properties
    assert (last["alias_key"], last["active"]) == ("p:+14155551234", 0)

"""``GET /a`` over an in-memory bus and a SQLite control store, with requests made by the SDK's encoder."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from tapwire_core.control.store import ControlStore
from tapwire_core.envelope import Envelope
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.http.websdk import router as websdk_router
from tests.credentials import LOOKUP_DIGESTS
from tests.fakes import FakeAuthenticator, RecordingBus
from tests.websdk.requests import event, profile, sdk_url
from tests.websdk.sdk_encoder import SdkEncoder

ACCOUNT = "TEST-WEB-001"
S_CALL = re.compile(
    r'^window\.\$WZRK_WR&&window\.\$WZRK_WR\.s\("([^"]+)",(\d+),(true|false),(\d+)(?:,(true|false))?\);'
)


@pytest.fixture(scope="module")
def encoder() -> Iterator[SdkEncoder]:
    with SdkEncoder() as running:
        yield running


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ControlStore]:
    control = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await control.start()
    await control.upsert_account(
        ACCOUNT, passcode="passcode-web-0123456", write_key="writekey-web-0123456", region="eu1"
    )
    await control.upsert_account(
        "TEST-US-001", passcode="passcode-us-01234567", write_key="writekey-us-01234567", region="us1"
    )
    try:
        yield control
    finally:
        await control.close()


@pytest.fixture
async def client(bus: RecordingBus, store: ControlStore) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(bus_timeout_s=0.5, sdk_requests_per_s_per_address=1000, sdk_burst_per_address=1000)
    context = ServiceContext(
        settings=settings, authenticator=FakeAuthenticator({}), readiness=_ready, bus_=bus, store_=store
    )
    app = create_app(context, [websdk_router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://eu1.t.example"
    ) as c:
        yield c


async def _ready() -> dict[str, bool]:
    return {"fake": True}


def s_call(response: httpx.Response) -> tuple[str, int, bool, int, bool | None]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/javascript")
    match = S_CALL.match(response.text)
    assert match, response.text
    g, sid, rf, rn, opt_out = match.groups()
    return g, int(sid), rf == "true", int(rn), None if opt_out is None else opt_out == "true"


def published(bus: RecordingBus, kind: str | None = None) -> list[Envelope]:
    return [e for e in bus.envelopes("tapwire.events") if kind is None or e.kind == kind]


async def test_first_page_load_gets_a_device_id_and_session_and_is_stored(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    url = sdk_url(
        encoder,
        "page",
        {"cpg": "https://shop.example/shoes?email=a@b.c#x", "referrer": "news.example", "us": "newsletter"},
        account_id=ACCOUNT,
        rn=1,
    )
    g, sid, rf, rn, opt_out = s_call(
        await client.get(
            url, headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"}
        )
    )
    assert re.fullmatch(r"[0-9a-f]{32}", g) and rn == 1 and rf is False and opt_out is None
    (page,) = published(bus)
    assert page.name == "Page Viewed" and page.ids.object_id == g
    assert page.properties == {
        "Session ID": sid,
        "Browser": "Chrome",
        "OS": "Linux",
        "Page": "https://shop.example/shoes",
        "Page Count": 1,
        "Referrer": "news.example",
        "UTM Source": "newsletter",
    }
    # Session properties, as CQL's session_properties read them; useIP=false: no address.
    assert page.context == {
        "session_id": sid,
        "browser": "Chrome",
        "os": "Linux",
        "referrer": "news.example",
        "campaign": {"source": "newsletter"},
    }


async def test_events_and_charged_items_keep_the_device_and_session(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    items = [{"Product": "Shoe", "Price": 40, "Quantity": 1}, {"Product": "Sock", "Price": 5, "Quantity": 2}]
    url = sdk_url(
        encoder,
        "push",
        event("Charged", {"Amount": 50, "Charged ID": "o-1", "Items": items}),
        account_id=ACCOUNT,
        device_id="d" * 32,
        session_id=1_765_000_000 + 10**6,
        rn=7,
    )
    g, _, _, rn, _ = s_call(await client.get(url))
    assert g == "d" * 32 and rn == 7
    (charged,) = published(bus)
    assert charged.name == "Charged" and charged.ids.object_id == g
    assert charged.properties["Items"] == items


async def test_the_fetch_variant_gets_meta_json_with_cors(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    url = sdk_url(encoder, "push", event("Viewed"), account_id=ACCOUNT, device_id="abc123", rn=3)
    headers = {
        "accept": "application/json",
        "x-clevertap-encryption-enabled": "true",
        "origin": "https://shop.example",
    }
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    body = response.json()
    assert body["meta"]["g"] == "abc123" and body["meta"]["rn"] == 3 and body["meta"]["rf"] is False
    preflight = await client.options(
        "/a",
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "x-clevertap-encryption-enabled",
        },
    )
    assert preflight.status_code == 204
    assert "x-clevertap-encryption-enabled" in preflight.headers["access-control-allow-headers"].lower()


async def test_sdk_system_events_are_accepted_and_wzrk_fetch_is_not_stored(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    for rn, body in enumerate(
        [event("wzrk_fetch", {"t": 4}), event("Notification Viewed", {"wzrk_id": "1_2"})]
    ):
        s_call(await client.get(sdk_url(encoder, "push", body, account_id=ACCOUNT, device_id="dev1", rn=rn)))
    assert [e.name for e in published(bus)] == ["Notification Viewed"]


async def test_a_refused_record_still_answers_with_the_device_id(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    url = sdk_url(encoder, "push", profile({"Email": "not-an-email"}), account_id=ACCOUNT, rn=2)
    response = await client.get(url)
    g, _, _, rn, _ = s_call(response)
    assert rn == 2 and g
    assert "console.warn" in response.text and "Email is not valid" in response.text
    assert published(bus) == []


async def test_profile_push_with_operators_and_multi_values(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    fields = {"Name": "Ann", "Score": {"$incr": 5}, "Tags": {"$set": ["a", 2]}, "Old": {"$delete": True}}
    s_call(await client.get(sdk_url(encoder, "push", profile(fields), account_id=ACCOUNT, device_id="dev2")))
    (stored,) = published(bus, "profile")
    assert stored.ids.object_id == "dev2" and stored.ids.identity is None
    assert stored.properties == {
        "Name": "Ann",
        "Score": {"$incr": 5},
        "Tags": ["a", "2"],
        "Old": {"$delete": True},
        "tz": "GMT+0100",
    }


async def test_web_push_subscription_is_a_chrome_token(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    subscription = {
        "endpoint": "fcm-token-123",
        "expirationTime": None,
        "keys": {"p256dh": "BP", "auth": "au"},
        "browser": "Chrome",
    }
    s_call(await client.get(sdk_url(encoder, "data", subscription, account_id=ACCOUNT, device_id="dev3")))
    (token,) = published(bus, "token")
    assert token.ids.object_id == "dev3"
    assert token.properties == {
        "id": "fcm-token-123",
        "type": "chrome",
        "keys": {"p256dh": "BP", "auth": "au"},
        "browser": "Chrome",
    }


async def test_a_retried_request_keeps_its_event_id(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    url = sdk_url(encoder, "push", event("Added"), account_id=ACCOUNT, device_id="dev4", rn=9)
    s_call(await client.get(url))
    s_call(await client.get(url.replace("tries=1", "tries=2")))
    first, second = published(bus)
    assert first.event_id == second.event_id


async def test_ping_is_answered_and_stores_nothing(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    g, _, _, _, _ = s_call(
        await client.get(sdk_url(encoder, "ping", {}, account_id=ACCOUNT, device_id="dev5"))
    )
    assert g == "dev5" and published(bus) == []


async def test_reset_cookie_gets_a_new_device(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    g, _, _, _, _ = s_call(
        await client.get(
            sdk_url(encoder, "push", {**event("E"), "rc": True}, account_id=ACCOUNT, device_id="dev6")
        )
    )
    assert g != "dev6"


@pytest.mark.parametrize(
    "case", [("NO-SUCH-ACCOUNT", 401, "Account ID is not valid"), ("TEST-US-001", 403, "region us1")]
)
async def test_unknown_and_foreign_accounts(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder, case: tuple[str, int, str]
) -> None:
    account, status, reason = case
    response = await client.get(sdk_url(encoder, "push", event("E"), account_id=account))
    assert response.status_code == status
    body: dict[str, Any] = orjson.loads(response.content)
    assert body["status"] == "fail" and reason in body["error"] and body["code"] == status
    assert published(bus) == []


def aliases(bus: RecordingBus) -> dict[str, str]:
    """alias key → canonical key, the latest version of each."""
    latest: dict[str, tuple[int, str, int]] = {}
    for envelope in published(bus, "alias"):
        row = envelope.properties
        if row["alias_key"] not in latest or latest[row["alias_key"]][0] < row["version"]:
            latest[row["alias_key"]] = (row["version"], row["canonical_key"], row["active"])
    return {alias: canonical for alias, (_, canonical, active) in latest.items() if active}


async def test_login_rules_on_the_identity_graph(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    # An anonymous browser logs in: its device (and the events filed under it) becomes the person's.
    s_call(
        await client.get(
            sdk_url(encoder, "push", event("Browsed"), account_id=ACCOUNT, device_id="dev-a", rn=1)
        )
    )
    login = profile({"Identity": "u-1", "Email": "ann@example.org"}, login=True)
    g, _, rf, rn, _ = s_call(
        await client.get(sdk_url(encoder, "push", login, account_id=ACCOUNT, device_id="dev-a", rn=2))
    )
    assert (g, rf, rn) == ("dev-a", True, 2)
    assert aliases(bus) == {"o:dev-a": "i:u-1", "e:ann@example.org": "i:u-1"}
    (stored,) = published(bus, "profile")
    assert stored.ids.identity == "u-1" and stored.ids.object_id == "dev-a"

    # The same person on another browser: that device joins them.
    s_call(
        await client.get(
            sdk_url(
                encoder,
                "push",
                profile({"Identity": "u-1"}, login=True),
                account_id=ACCOUNT,
                device_id="dev-b",
            )
        )
    )
    assert aliases(bus)["o:dev-b"] == "i:u-1"

    # Another person on the first browser: a new device id, which starts their own profile.
    other = profile({"Identity": "u-2"}, login=True)
    g2, _, rf2, _, _ = s_call(
        await client.get(sdk_url(encoder, "push", other, account_id=ACCOUNT, device_id="dev-a", rn=3))
    )
    assert g2 != "dev-a" and rf2 is True
    assert aliases(bus)[f"o:{g2}"] == "i:u-2" and aliases(bus)["o:dev-a"] == "i:u-1"
    second = published(bus, "profile")[-1]
    assert second.ids.identity == "u-2" and second.ids.object_id == g2


async def objected(store: ControlStore, keys: list[str]) -> set[str]:
    from sqlalchemy.ext.asyncio import AsyncSession

    from tapwire_core.control.marketing_objections import objected_keys

    async with AsyncSession(store.engine) as session, session.begin():
        return await objected_keys(session, account_id=ACCOUNT, keys=keys)


async def test_opt_out_is_enforced_by_the_server_and_visible_as_an_objection(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder, store: ControlStore
) -> None:
    login = profile({"Identity": "u-oo", "Email": "oo@example.org"}, login=True)
    s_call(await client.get(sdk_url(encoder, "push", login, account_id=ACCOUNT, device_id="dev-oo", rn=1)))
    before = len(published(bus))
    # clevertap.privacy.push({optOut: true}) as Privacy#processPrivacyArray sends it.
    privacy = {"type": "profile", "profile": {"ct_optout": True}}
    url = sdk_url(
        encoder, "push", privacy, account_id=ACCOUNT, device_id="dev-oo", rn=2, extra={"optOut": "true"}
    )
    g, _, _, rn, opt_out = s_call(await client.get(url))
    assert (g, rn, opt_out) == ("dev-oo:OO", 2, True)
    assert await objected(store, ["o:dev-oo", "i:u-oo", "e:oo@example.org"]) == {
        "o:dev-oo",
        "i:u-oo",
        "e:oo@example.org",
    }

    # Requests that still arrive, with or without the mark, and the same person on another browser: none stored.
    for device in ("dev-oo", "dev-oo:OO"):
        s_call(
            await client.get(
                sdk_url(encoder, "push", event("After"), account_id=ACCOUNT, device_id=device, rn=3)
            )
        )
    other = sdk_url(
        encoder, "push", profile({"Identity": "u-oo"}, login=True), account_id=ACCOUNT, device_id="dev-o2"
    )
    assert s_call(await client.get(other))[4] is True
    s_call(await client.get(sdk_url(encoder, "push", event("After"), account_id=ACCOUNT, device_id="dev-o2")))
    assert len(published(bus)) == before

    # Opting back in (the SDK sends its marked id) lifts the opt-out and the objection it made.
    privacy_in = {"type": "profile", "profile": {"ct_optout": False}}
    url = sdk_url(
        encoder,
        "push",
        privacy_in,
        account_id=ACCOUNT,
        device_id="dev-oo:OO",
        rn=4,
        extra={"optOut": "false"},
    )
    g, _, _, _, opt_out = s_call(await client.get(url))
    assert (g, opt_out) == ("dev-oo", False)
    assert await objected(store, ["o:dev-oo", "i:u-oo"]) == set()
    s_call(
        await client.get(
            sdk_url(encoder, "push", event("Back"), account_id=ACCOUNT, device_id="dev-oo", rn=5)
        )
    )
    assert published(bus)[-1].name == "Back"


async def test_the_services_fast_path_answers_like_the_route_and_is_counted(
    bus: RecordingBus, store: ControlStore, encoder: SdkEncoder
) -> None:
    from tapwire_core import metrics
    from tapwire_ingest.http.websdk import install_fast_path

    # Behind a trusted proxy, one request per forwarded address: the fast path must see the client's address.
    settings = Settings(
        bus_timeout_s=0.5,
        trusted_proxies="127.0.0.1/32",
        sdk_requests_per_s_per_address=1,
        sdk_burst_per_address=1,
    )
    context = ServiceContext(
        settings=settings, authenticator=FakeAuthenticator({}), readiness=_ready, bus_=bus, store_=store
    )
    app = create_app(context, [websdk_router])
    install_fast_path(app)
    counted = metrics.HTTP_REQUESTS.labels("/a", "200")
    before = counted._value.get()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://eu1.t.example"
    ) as c:
        url = sdk_url(encoder, "push", event("Fast"), account_id=ACCOUNT, device_id="dev-f", rn=4)
        g, _, _, rn, _ = s_call(await c.get(url, headers={"x-forwarded-for": "198.51.100.1"}))
        bad = await c.get("/a?t=96&type=push&d=%%%", headers={"x-forwarded-for": "198.51.100.2"})
        again = await c.get("/a?t=96&type=push&d=%%%", headers={"x-forwarded-for": "198.51.100.2"})
        preflight = await c.options(
            "/a", headers={"origin": "https://shop.example", "access-control-request-method": "GET"}
        )
    assert (g, rn) == ("dev-f", 4) and [e.name for e in published(bus)] == ["Fast"]
    assert bad.status_code == 400 and bad.json()["code"] == 400
    assert again.status_code == 429
    assert preflight.status_code == 204
    assert counted._value.get() == before + 1


VAPID_KEY = "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U"


async def test_page_loads_tell_the_sdk_about_web_push_when_the_account_has_a_key(
    client: httpx.AsyncClient, store: ControlStore, encoder: SdkEncoder
) -> None:
    url = sdk_url(encoder, "page", {"cpg": "https://shop.example/"}, account_id=ACCOUNT, device_id="dev-wp")
    assert "enableWebPush" not in (await client.get(url)).text
    # A settings change made through this process's store is seen at once (the account cache is told).
    await store.update_settings(ACCOUNT, {"web_push_public_key": VAPID_KEY})
    script = (await client.get(url)).text
    _, push_line, config_line = script.splitlines()
    assert push_line == f'window.$WZRK_WR&&window.$WZRK_WR.enableWebPush(true,"{VAPID_KEY}");'
    assert config_line == 'window.$WZRK_WR&&window.$WZRK_WR.tr({"webPushConfig":{}});'
    fetched = (await client.get(url, headers={"accept": "application/json"})).json()
    assert fetched["wpe"] == {"enabled": True, "key": VAPID_KEY}
    assert fetched["tr"] == {"webPushConfig": {}}
    # Only page loads carry it.
    event_answer = await client.get(
        sdk_url(encoder, "push", event("E"), account_id=ACCOUNT, device_id="dev-wp")
    )
    assert "enableWebPush" not in event_answer.text


async def test_the_client_address_is_kept_only_when_the_page_allows_it(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    for rn, use_ip in enumerate(("false", "true")):
        url = sdk_url(
            encoder,
            "push",
            event(f"IP {use_ip}"),
            account_id=ACCOUNT,
            device_id="dev-ip",
            rn=rn,
            extra={"useIP": use_ip},
        )
        s_call(await client.get(url))
    contexts = {e.name: e.context or {} for e in published(bus)}
    assert "ip" not in contexts["IP false"]
    assert contexts["IP true"]["ip"] == "127.0.0.1"


async def test_nested_properties_as_the_sdk_validates_them(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    # clevertap.js isObjStructureValid: objects up to 3 levels deep, at most 5 objects or lists per level.
    nested = {
        "Trip": {"From": "Pune", "Legs": [{"To": "Goa", "Seat": {"Row": 4}}], "Tags": ["a", "b"]},
        "Price": 9,
    }
    s_call(
        await client.get(
            sdk_url(encoder, "push", event("Booked", nested), account_id=ACCOUNT, device_id="dev-n")
        )
    )
    profile_fields = {"Address": {"City": "Pune", "Geo": {"Lat": 18.5}}, "Score": {"$incr": 1}}
    s_call(
        await client.get(
            sdk_url(encoder, "push", profile(profile_fields), account_id=ACCOUNT, device_id="dev-n")
        )
    )
    (booked,) = published(bus, "event")
    assert booked.properties == nested
    (stored,) = published(bus, "profile")
    assert stored.properties["Address"] == {"City": "Pune", "Geo": {"Lat": 18.5}}

    too_deep: dict[str, Any] = {"A": {"B": {"C": {"D": {"E": 1}}}}}
    too_many: dict[str, Any] = {f"K{i}": {"v": i} for i in range(6)}
    for rn, data in enumerate((too_deep, too_many), start=2):
        response = await client.get(
            sdk_url(encoder, "push", event("Bad", data), account_id=ACCOUNT, device_id="dev-n", rn=rn)
        )
        assert s_call(response)[3] == rn and "console.warn" in response.text
    assert [e.name for e in published(bus, "event")] == ["Booked"]


async def test_encryption_in_transit_gets_the_status_that_makes_the_sdk_fall_back(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    # EncryptionInTransit.encryptForBackend replaces d with compressData of this envelope; the SDK's
    # handleFetchResponse falls back to JSONP with the unencrypted URL on 402 or 419.
    envelope = {"itp": "c2VjcmV0", "itk": "a2V5", "itv": "aXY=", "id": ACCOUNT, "encrypted": True}
    d = encoder.encode(orjson.dumps(envelope).decode())
    response = await client.get(
        f"/a?t=96&type=push&d={quote(d, safe='')}&rn=1",
        headers={
            "accept": "application/json",
            "x-clevertap-encryption-enabled": "true",
            "origin": "https://shop.example",
        },
    )
    assert response.status_code == 419 and response.json()["code"] == 419
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    assert published(bus) == []


async def test_an_opt_out_reaches_the_persons_other_devices_already_identified(
    client: httpx.AsyncClient, bus: RecordingBus, encoder: SdkEncoder, store: ControlStore
) -> None:
    """The person logged in on a phone browser first, then on a laptop, where they opt out: the phone's later
    requests, which carry no login (the SDK sends it once), are not stored either."""
    login = profile({"Identity": "u-two", "Email": "two@example.org"}, login=True)
    for device in ("dev-phone", "dev-laptop"):
        s_call(await client.get(sdk_url(encoder, "push", login, account_id=ACCOUNT, device_id=device, rn=1)))
    privacy = {"type": "profile", "profile": {"ct_optout": True}}
    url = sdk_url(
        encoder, "push", privacy, account_id=ACCOUNT, device_id="dev-laptop", rn=2, extra={"optOut": "true"}
    )
    assert s_call(await client.get(url))[4] is True
    before = len(published(bus))
    g, _, _, _, opt_out = s_call(
        await client.get(
            sdk_url(encoder, "push", event("Later"), account_id=ACCOUNT, device_id="dev-phone", rn=2)
        )
    )
    assert len(published(bus)) == before
    # The phone's answer marks its device id too, so its SDK stops sending as the laptop's did.
    assert (g, opt_out) == ("dev-phone:OO", True)
    assert await objected(store, ["o:dev-phone"]) == {"o:dev-phone"}

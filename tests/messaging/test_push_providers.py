"""Push against provider-shaped receivers that check credentials as FCM and APNs do: APNs over HTTP/2 and TLS
with a verified ES256 provider token, FCM with OAuth access tokens from the service account's token endpoint;
``Retry-After`` honoured for FCM, APNs and Twilio."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tapwire_core.settings import Settings
from tapwire_messaging.channels import OutboundMessage, build_providers
from tapwire_messaging.channels.apns_token import ApnsProviderToken
from tapwire_messaging.channels.fcm_token import FcmAccessToken
from tapwire_messaging.channels.http_retry import RetryPolicy
from tapwire_messaging.channels.push import ApnsAdapter, FcmAdapter, PushRouter
from tapwire_messaging.channels.sms import TwilioSmsAdapter
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.push_receivers import (
    APNS_KEY_ID,
    APNS_TEAM_ID,
    FCM_PROJECT,
    apns_key_pem,
    apns_receiver,
    fcm_receiver,
)
from tests.messaging.servers import Received, http_receiver

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=5.0)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _push(key: str, to: str = "live", platform: str = "fcm") -> OutboundMessage:
    return OutboundMessage(key, to, "Body", title="Title", platform=platform, data={"n": 1})


async def test_apns_goes_over_http2_with_a_provider_token_apple_would_accept(tmp_path: Path) -> None:
    key_pem, public_key = apns_key_pem()
    with apns_receiver(public_key, tmp_path) as receiver:
        receiver.gone.add("dead")
        token = ApnsProviderToken(key_pem, key_id=APNS_KEY_ID, team_id=APNS_TEAM_ID)
        apns = ApnsAdapter(
            f"{receiver.url}?topic=com.shop.app", token=token, policy=FAST, verify=receiver.client_context()
        )
        router = PushRouter(None, apns)
        ok = await router.send(_push("k1", "abc", "apns"))
        again = await router.send(_push("k1", "abc", "apns"))
        gone = await router.send(_push("k2", "dead", "apns"))
        await router.close()
    assert (ok.outcome, again.outcome, gone.outcome) == ("sent", "sent", "unregistered"), (ok, gone)
    first, second, _ = receiver.requests
    assert {r.http_version for r in receiver.requests} == {"2"}
    assert first.claims is not None and first.claims["iss"] == APNS_TEAM_ID
    assert first.path == "/3/device/abc"
    assert first.headers["apns-topic"] == "com.shop.app"
    assert first.headers["apns-push-type"] == "alert"
    assert first.headers["apns-id"] == second.headers["apns-id"] == ok.provider_id  # stable per outbox key
    assert first.headers["authorization"] == second.headers["authorization"]  # one token, reused


async def test_the_apns_provider_token_is_renewed_before_its_hour_is_up(tmp_path: Path) -> None:
    key_pem, public_key = apns_key_pem()
    clock = Clock(time.time())
    with apns_receiver(public_key, tmp_path) as receiver:
        token = ApnsProviderToken(key_pem, key_id=APNS_KEY_ID, team_id=APNS_TEAM_ID, clock=clock)
        apns = ApnsAdapter(
            f"{receiver.url}?topic=com.shop.app", token=token, policy=FAST, verify=receiver.client_context()
        )
        started = clock.now
        results = []
        for minutes in (0, 19, 49, 51, 70):
            clock.now = started + minutes * 60
            results.append(await apns.send(_push(f"k{minutes}", "abc", "apns")))
        await apns.close()
    assert all(r.outcome == "sent" for r in results)
    issued = [int(r.claims["iat"]) for r in receiver.requests if r.claims]
    # Minted at 0, reused until 49 minutes (no renewal inside Apple's 20-minute floor), renewed at 51.
    assert issued == [int(started)] * 3 + [int(started + 51 * 60)] * 2


async def test_an_expired_provider_token_is_renewed_and_the_push_sent(tmp_path: Path) -> None:
    """A process whose clock was an hour behind (or that slept) minted a token APNs calls expired; the next
    token, minted on the corrected clock, goes through within the same send."""
    key_pem, public_key = apns_key_pem()
    times = iter([time.time() - 3700])

    def clock() -> float:
        return next(times, time.time())

    with apns_receiver(public_key, tmp_path) as receiver:
        token = ApnsProviderToken(key_pem, key_id=APNS_KEY_ID, team_id=APNS_TEAM_ID, clock=clock)
        apns = ApnsAdapter(
            f"{receiver.url}?topic=com.shop.app", token=token, policy=FAST, verify=receiver.client_context()
        )
        result = await apns.send(_push("k", "abc", "apns"))
        await apns.close()
    assert result.outcome == "sent", result
    assert [r.claims is None for r in receiver.requests] == [True, False]


@pytest.mark.parametrize(
    "setting", ["https://:eyJhbGciOi@api.push.apple.com?topic=x", "https://api.push.apple.com"]
)
def test_an_apns_url_with_credentials_or_without_topic_is_refused(setting: str) -> None:
    key_pem, _ = apns_key_pem()
    token = ApnsProviderToken(key_pem, key_id=APNS_KEY_ID, team_id=APNS_TEAM_ID)
    with pytest.raises(ValueError, match="TAPWIRE_APNS_URL"):
        ApnsAdapter(setting, token=token)


def test_an_apns_key_that_is_not_es256_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="APNs key"):
        ApnsProviderToken.from_file(key_file, key_id=APNS_KEY_ID, team_id=APNS_TEAM_ID)


async def test_fcm_sends_with_an_access_token_from_the_service_accounts_token_endpoint(
    tmp_path: Path,
) -> None:
    with fcm_receiver(tmp_path) as (receiver, key_file):
        credentials, project = FcmAccessToken.from_file(key_file)
        assert project == FCM_PROJECT
        fcm = FcmAdapter(receiver.url, credentials=credentials, project_id=project, policy=FAST)
        router = PushRouter(fcm, None)
        results = [await router.send(_push(f"k{i}")) for i in range(3)]
        gone = await router.send(_push("k9", "dead"))
        await router.close()
    assert [r.outcome for r in results] == ["sent"] * 3 and gone.outcome == "unregistered"
    assert results[0].provider_id == f"projects/{FCM_PROJECT}/messages/1"
    # One assertion signed with the key, one access token, used by every send.
    assert len(receiver.assertions) == 1 and len(receiver.issued) == 1
    (issued,) = receiver.issued
    assert {r.headers["authorization"] for r in receiver.sends} == {f"Bearer {issued}"}
    assert receiver.sends[0].json() == {
        "message": {"token": "live", "notification": {"title": "Title", "body": "Body"}, "data": {"n": "1"}}
    }


async def test_the_fcm_access_token_is_refreshed_before_it_expires(tmp_path: Path) -> None:
    with fcm_receiver(tmp_path) as (receiver, key_file):
        clock = Clock(time.time())
        credentials, project = FcmAccessToken.from_file(key_file, clock=clock, refresh_margin_s=300)
        fcm = FcmAdapter(receiver.url, credentials=credentials, project_id=project, policy=FAST)
        assert (await fcm.send(_push("k1"))).outcome == "sent"
        clock.now += 3600 - 400  # 400 s left: still good
        assert (await fcm.send(_push("k2"))).outcome == "sent"
        clock.now += 200  # 200 s left: inside the margin, so a new token first
        assert (await fcm.send(_push("k3"))).outcome == "sent"
        await fcm.close()
    assert len(receiver.issued) == 2 and credentials.refreshes == 2
    tokens = [r.headers["authorization"] for r in receiver.sends]
    assert tokens[0] == tokens[1] != tokens[2]


async def test_a_401_from_fcm_refreshes_the_token_and_sends_once_more(tmp_path: Path) -> None:
    with fcm_receiver(tmp_path) as (receiver, key_file):
        credentials, project = FcmAccessToken.from_file(key_file)
        fcm = FcmAdapter(receiver.url, credentials=credentials, project_id=project, policy=FAST)
        assert (await fcm.send(_push("k1"))).outcome == "sent"
        receiver.issued.clear()  # FCM no longer takes the token (revoked, or expired early)
        result = await fcm.send(_push("k2"))
        await fcm.close()
    assert result.outcome == "sent"
    assert [
        r.headers["authorization"] == receiver.sends[0].headers["authorization"] for r in receiver.sends
    ] == [
        True,
        True,
        False,
    ]


async def test_fcm_without_a_working_token_endpoint_fails_for_now(tmp_path: Path) -> None:
    with fcm_receiver(tmp_path) as (receiver, key_file):
        key = key_file.read_text().replace("/token", "/nowhere")
        key_file.write_text(key)
        credentials, project = FcmAccessToken.from_file(key_file)
        fcm = FcmAdapter(receiver.url, credentials=credentials, project_id=project, policy=FAST)
        result = await fcm.send(_push("k1"))
        await fcm.close()
    assert result.outcome == "failed" and "no FCM access token" in result.detail
    assert receiver.sends == []


def test_push_is_built_from_settings_with_key_files(tmp_path: Path) -> None:
    key_pem, _ = apns_key_pem()
    (tmp_path / "AuthKey.p8").write_bytes(key_pem)
    with fcm_receiver(tmp_path) as (receiver, key_file):
        settings = Settings(
            fcm_url="https://fcm.googleapis.com",
            fcm_credentials_file=key_file,
            apns_url="https://api.push.apple.com?topic=com.shop.app",
            apns_key_file=tmp_path / "AuthKey.p8",
            apns_key_id=APNS_KEY_ID,
            apns_team_id=APNS_TEAM_ID,
        )
        push = build_providers(settings).push
    assert isinstance(push, PushRouter) and push.fcm is not None and push.apns is not None
    assert push.fcm.url == f"https://fcm.googleapis.com/v1/projects/{FCM_PROJECT}/messages:send"
    assert push.apns.topic == "com.shop.app"
    del receiver


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"fcm_url": "https://fcm.googleapis.com"}, "TAPWIRE_FCM_CREDENTIALS_FILE"),
        (
            {"fcm_url": "https://fcm.googleapis.com", "fcm_credentials_file": "/nonexistent.json"},
            "TAPWIRE_FCM",
        ),
        ({"fcm_url": "https://:ya29.token@fcm.googleapis.com/v1/projects/p"}, "TAPWIRE_FCM_CREDENTIALS_FILE"),
        ({"apns_url": "https://api.push.apple.com?topic=x"}, "TAPWIRE_APNS_KEY_FILE"),
        (
            {"apns_url": "https://api.push.apple.com?topic=x", "apns_key_file": "/nonexistent.p8"},
            "TAPWIRE_APNS_KEY",
        ),
    ],
)
def test_push_without_its_credentials_stops_the_service_at_start(
    settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        build_providers(Settings(**settings))


async def test_fcm_retry_after_holds_every_send_to_the_provider(tmp_path: Path) -> None:
    with fcm_receiver(tmp_path) as (receiver, key_file):
        receiver.throttle.answers = [(429, "120")]
        credentials, project = FcmAccessToken.from_file(key_file)
        fcm = FcmAdapter(receiver.url, credentials=credentials, project_id=project, policy=FAST)
        throttled = await fcm.send(_push("k1"))
        held = await fcm.send(_push("k2"))
        await fcm.close()
    assert throttled.outcome == "failed" and throttled.retry_after_s == pytest.approx(120)
    # The second send did not reach FCM: it is given back with what is left of the pause.
    assert held.outcome == "failed" and held.retry_after_s is not None and 110 < held.retry_after_s <= 120
    assert len(receiver.sends) == 1


async def test_a_short_fcm_retry_after_is_waited_for_within_the_send(tmp_path: Path) -> None:
    with fcm_receiver(tmp_path) as (receiver, key_file):
        receiver.throttle.answers = [(503, "1")]
        credentials, project = FcmAccessToken.from_file(key_file)
        fcm = FcmAdapter(receiver.url, credentials=credentials, project_id=project, policy=FAST)
        started = time.monotonic()
        result = await fcm.send(_push("k1"))
        waited = time.monotonic() - started
        await fcm.close()
    assert result.outcome == "sent"
    assert len(receiver.sends) == 2
    assert waited >= 1.0  # the provider's wait, not the policy's 10 ms backoff


async def test_apns_retry_after_holds_the_push(tmp_path: Path) -> None:
    key_pem, public_key = apns_key_pem()
    with apns_receiver(public_key, tmp_path) as receiver:
        receiver.throttle.answers = [(503, "90")]
        token = ApnsProviderToken(key_pem, key_id=APNS_KEY_ID, team_id=APNS_TEAM_ID)
        apns = ApnsAdapter(
            f"{receiver.url}?topic=com.shop.app", token=token, policy=FAST, verify=receiver.client_context()
        )
        throttled = await apns.send(_push("k1", "abc", "apns"))
        held = await apns.send(_push("k2", "abc", "apns"))
        await apns.close()
    assert throttled.outcome == "failed" and throttled.retry_after_s == pytest.approx(90)
    assert held.outcome == "failed" and held.retry_after_s is not None and held.retry_after_s > 80
    assert len(receiver.requests) == 1


async def test_twilio_retry_after_holds_the_text() -> None:
    answers: list[tuple[int, dict[str, object], dict[str, str]]] = [
        (429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "1"}),
        (429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "600"}),
    ]

    def respond(request: Received, _n: int) -> tuple[int, dict[str, object], dict[str, str]]:
        if answers:
            return answers.pop(0)
        return 201, {"sid": f"SM{parse_qs(request.body.decode())['To'][0][-4:]}"}, {}

    with http_receiver(respond) as receiver:
        url = (
            f"http://AC1:tok@127.0.0.1:{receiver.port}/2010-04-01/Accounts/AC1/Messages.json?From=%2B15551111"
        )
        sms = TwilioSmsAdapter(url, policy=FAST)
        started = time.monotonic()
        held = await sms.send(OutboundMessage("k1", "+15552222", "Hi"))
        waited = time.monotonic() - started
        await sms.close()
    # 1 s was waited for inside the send; the next answer asked for 10 minutes: back to the outbox.
    assert waited >= 1.0
    assert held.outcome == "failed" and held.retry_after_s == pytest.approx(600)
    assert len(receiver.requests) == 2


async def test_the_sender_does_not_retry_before_the_providers_retry_after(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    from sqlalchemy import select

    from tapwire_core.control.messaging.models import OutboxRow
    from tests.messaging.rig import add_profiles, messaging_rig, settings_for

    def respond(_r: Received, _n: int) -> tuple[int, dict[str, object], dict[str, str]]:
        return 429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "900"}

    warehouse = await warehouse_factory("chdb")
    with http_receiver(respond) as receiver:
        sms_url = (
            f"http://AC1:tok@127.0.0.1:{receiver.port}/2010-04-01/Accounts/AC1/Messages.json?From=%2B1555"
        )
        settings = settings_for(tmp_path, None, sms_url=sms_url)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, [("i:ann", {"Phone": "+15552222"})])
            created = await rig.post(
                "/1/send/sms.json", {"to": {"Identity": ["ann"]}, "content": {"body": "Hi"}}
            )
            assert created.status_code == 200, created.text
            asked_at_ms = time.time() * 1000
            row = None
            for _ in range(200):
                async with rig.service.store.engine.connect() as connection:
                    row = (await connection.execute(select(OutboxRow))).first()
                if row is not None and row.attempts >= 1 and row.status == "pending":
                    break
                await asyncio.sleep(0.05)
    assert row is not None and row.status == "pending", row
    assert row.due_ms >= asked_at_ms + 890_000  # not the 2 s backoff of a first failure
    assert len(receiver.requests) == 1

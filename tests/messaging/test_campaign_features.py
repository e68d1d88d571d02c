"""Campaign features through the HTTP API on real stores: webhooks, push tokens, opens and clicks as events,
quiet hours on an injected clock, stop, cutoff, template validation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tapwire_core.envelope import decode
from tapwire_messaging.channels.webhook import verify_signature
from tapwire_messaging.metrics import DELIVERIES
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.push_receivers import push_providers
from tests.messaging.rig import (
    HEADERS,
    Rig,
    add_profiles,
    add_push_tokens,
    messaging_rig,
    settings_for,
    wait_finished,
)
from tests.messaging.servers import Received, http_receiver, smtp_sink

pytestmark = pytest.mark.integration

HOOK_SECRET = "hook-secret-0123456789abcdef"


async def test_webhook_send_is_signed_and_a_500_then_200_is_accepted_once(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    answers: dict[str, int] = {}

    def respond(request: Received, _n: int) -> tuple[int, dict[str, Any]]:
        user = request.json()["user_key"]
        answers[user] = answers.get(user, 0) + 1
        return (500, {}) if answers[user] == 1 else (200, {"ok": True})

    sent_before = DELIVERIES.labels("webhook", "sent")._value.get()
    failed_before = DELIVERIES.labels("webhook", "failed")._value.get()
    with http_receiver(respond) as receiver:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, None)) as rig:
            await add_profiles(warehouse, [("i:ann", {"Name": "Ann"}), ("i:bob", {})])
            response = await rig.post(
                "/1/send/webhook.json",
                {
                    "to": {"Identity": ["ann", "bob"]},
                    "content": {
                        "body": 'Hello {{ Profile.Name | default: "friend" }}, {{ Event.Amount }} EUR'
                    },
                    "event": {"Amount": 42},
                    "webhook": {"url": f"{receiver.url}/hook", "secret": HOOK_SECRET},
                },
            )
            assert response.status_code == 200, response.text
            assert response.json()["message"] == "Added to queue for processing"
            campaign = await wait_finished(rig, response.json()["id"])
    assert campaign["sent"] == 2
    assert answers == {"i:ann": 2, "i:bob": 2}
    # The failure-rate alert's counter: each recipient's 500 inside the adapter's retries is one delivery.
    assert DELIVERIES.labels("webhook", "sent")._value.get() - sent_before == 2
    assert DELIVERIES.labels("webhook", "failed")._value.get() - failed_before == 0
    for request in receiver.requests:
        assert verify_signature(
            HOOK_SECRET,
            timestamp=request.headers["x-tapwire-timestamp"],
            body=request.body,
            signature=request.headers["x-tapwire-signature"],
        )
    bodies = {r.json()["user_key"]: r.json()["content"]["body"] for r in receiver.requests}
    assert bodies == {"i:ann": "Hello Ann, 42 EUR", "i:bob": "Hello friend, 42 EUR"}


async def test_push_tokens_reported_unregistered_are_not_used_again(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")

    def respond(request: Received, _n: int) -> tuple[int, dict[str, Any]]:
        if request.json()["message"]["token"] == "tok-dead":
            return 404, {"error": {"details": [{"errorCode": "UNREGISTERED"}]}}
        return 200, {"name": "projects/p/messages/1"}

    with push_providers(tmp_path, fcm_answer=respond) as providers:
        fcm = providers.fcm
        settings = settings_for(tmp_path, None, **providers.settings)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, [("i:live", {}), ("i:dead", {}), ("i:none", {})])
            await add_push_tokens(warehouse, [("i:live", "tok-live", "fcm"), ("i:dead", "tok-dead", "fcm")])
            push = {"name": "p", "target_mode": "push", "where": {}, "content": {"title": "T", "body": "B"}}
            first = await wait_finished(rig, (await rig.post("/1/targets/create.json", push)).json()["id"])
            second = await wait_finished(rig, (await rig.post("/1/targets/create.json", push)).json()["id"])
    assert (first["sent"], first["failed"], first["no_address"]) == (1, 1, 1)
    assert (second["sent"], second["failed"], second["no_address"]) == (1, 0, 2)
    tokens = [r.json()["message"]["token"] for r in fcm.requests]
    assert sorted(tokens) == ["tok-dead", "tok-live", "tok-live"]


async def test_opens_and_clicks_arrive_as_events_and_in_the_report(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, [("i:ann", {"Email": "ann@example.com"})])
            created = await rig.post(
                "/1/targets/create.json",
                {
                    "name": "html",
                    "target_mode": "email",
                    "where": {},
                    "content": {
                        "subject": "Sale",
                        "body": "See https://shop.example/sale",
                        "html": '<a href="https://shop.example/sale?x=1&amp;y=2">Sale</a>',
                    },
                },
            )
            campaign_id = created.json()["id"]
            await wait_finished(rig, campaign_id)
            (mail,) = sink.receipts
            html_part = mail.get_body(preferencelist=("html",))
            assert html_part is not None
            html = html_part.get_content()
            click_path = re.search(r'href="https://t\.shop\.example(/m/c/[^"]+)"', html)
            pixel_path = re.search(r'src="https://t\.shop\.example(/m/o/[^"]+)"', html)
            assert click_path and pixel_path
            pixel = await rig.client.get(pixel_path.group(1))
            assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
            await rig.client.get(pixel_path.group(1))  # a second open counts once
            clicked = await rig.client.get(click_path.group(1).replace("&amp;", "&"))
            assert clicked.status_code == 302
            assert clicked.headers["location"] == "https://shop.example/sale?x=1&y=2"
            forged = await rig.client.get(click_path.group(1)[:-3] + "abc")
            assert forged.status_code == 404

            today = int(datetime.now(UTC).strftime("%Y%m%d"))
            report = await rig.post("/1/message/report.json", {"from": str(today), "to": str(today)})
            (message,) = report.json()["messages"]
            assert (message["id"], message["sent"], message["viewed"], message["clicked"]) == (
                campaign_id,
                1,
                1,
                1,
            )
            result = await rig.post("/1/targets/result.json", {"id": campaign_id})
            assert result.json()["result"]["clicked"] == 1

            events = await _events(rig, 3)
    names = sorted(e.name for e in events)
    assert names == ["Notification Clicked", "Notification Sent", "Notification Viewed"]
    assert all(e.properties["campaign_id"] == campaign_id and e.ids.identity == "ann" for e in events)


async def _events(rig: Any, expected: int) -> list[Any]:
    consumer = rig.service.bus.consumer([rig.settings.events_topic], "test-feedback")
    await consumer.start()
    found: list[Any] = []
    try:
        for _ in range(100):
            found += [decode(d.value) for d in await consumer.fetch(100, 0.1)]
            if len(found) >= expected:
                break
    finally:
        await consumer.close()
    return found


async def test_quiet_hours_defer_until_the_window_ends_on_an_injected_clock(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    now = [datetime(2026, 3, 10, 23, 0, tzinfo=UTC)]
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url)
        async with messaging_rig(tmp_path, warehouse, settings, clock=lambda: now[0]) as rig:
            await add_profiles(
                warehouse,
                [
                    ("i:berlin", {"Email": "berlin@example.com", "Timezone": "Europe/Berlin"}),
                    ("i:ny", {"Email": "ny@example.com", "Timezone": "America/New_York"}),
                ],
            )
            created = await rig.post(
                "/messaging/v1/campaigns",
                {
                    "name": "quiet",
                    "channel": "email",
                    "where": {},
                    "quiet_hours": {"start": "22:00", "end": "08:00"},
                    "content": {"subject": "s", "body": "b"},
                },
            )
            assert created.status_code == 201, created.text
            campaign_id = created.json()["id"]
            # 23:00 UTC: midnight in Berlin (quiet), 18:00 in New York (not).
            await _until(lambda: len(sink.receipts) == 1)
            assert str(sink.receipts[0]["To"]) == "ny@example.com"
            deferred = rig.service.sender.stats.deferred
            assert deferred >= 1
            now[0] = datetime(2026, 3, 11, 6, 59, tzinfo=UTC)  # 07:59 in Berlin
            await asyncio.sleep(0.3)
            assert len(sink.receipts) == 1
            now[0] = datetime(2026, 3, 11, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
            campaign = await wait_finished(rig, campaign_id)
    assert campaign["sent"] == 2
    assert sorted(str(m["To"]) for m in sink.receipts) == ["berlin@example.com", "ny@example.com"]


async def _until(predicate: Any, attempts: int = 2400) -> None:
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_stop_halts_a_throttled_campaign(tmp_path: Path, warehouse_factory: WarehouseFactory) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, [(f"i:u{i}", {"Email": f"u{i}@example.com"}) for i in range(400)])
            created = await rig.post(
                "/1/targets/create.json",
                {
                    "name": "slow",
                    "target_mode": "email",
                    "where": {},
                    "throttle_per_s": 20,
                    "content": {"subject": "s", "body": "b"},
                },
            )
            campaign_id = created.json()["id"]
            await _until(lambda: len(sink.receipts) >= 5)
            stopped = await rig.post("/1/targets/stop.json", {"id": campaign_id})
            assert stopped.json() == {"status": "success", "id": campaign_id}
            campaign = await wait_finished(rig, campaign_id)
            assert (await rig.post("/1/targets/stop.json", {"id": campaign_id})).json()["status"] == "success"
    assert campaign["status"] == "stopped"
    assert campaign["sent"] == len(sink.receipts) < 400
    assert campaign["stopped"] == 400 - campaign["sent"]


async def test_sends_past_the_cutoff_are_dropped_and_counted(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, [(f"i:u{i}", {"Email": f"u{i}@example.com"}) for i in range(30)])
            created = await rig.post(
                "/1/targets/create.json",
                {
                    "name": "late",
                    "target_mode": "email",
                    "where": {},
                    "when": "20250101 09:00",
                    "cutoff_s": 3600,
                    "content": {"subject": "s", "body": "b"},
                },
            )
            campaign = await wait_finished(rig, created.json()["id"])
    assert (campaign["expired"], campaign["sent"]) == (30, 0)
    assert sink.receipts == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"content": {"subject": "Hi {{ Profile.Name | shout }}", "body": "b"}},
            422,
            "content.subject: unknown filter 'shout'",
        ),
        ({"content": {"subject": "s", "body": "{% if %}"}}, 422, "content.body: missing expression"),
        ({"content": {"body": "b"}}, 422, "content.subject is required for email messages"),
        (
            {"quiet_hours": {"start": "22:00", "end": "8"}, "content": {"subject": "s", "body": "b"}},
            422,
            "quiet_hours.end",
        ),
        (
            {
                "where": {
                    "event_name": "x",
                    "from": 20260101,
                    "to": 20260101,
                    "event_properties": [{"name": "a", "operator": "bogus", "value": 1}],
                },
                "content": {"subject": "s", "body": "b"},
            },
            422,
            "where: event_properties.0.operator",
        ),
        ({"segment": "all", "content": {"subject": "s", "body": "b"}}, 400, "exactly one of"),
        ({"when": "tomorrow", "content": {"subject": "s", "body": "b"}}, 400, "when must be"),
    ],
)
async def test_invalid_campaigns_are_refused_naming_the_problem(
    tmp_path: Path, warehouse_factory: WarehouseFactory, body: dict[str, Any], status: int, message: str
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            response = await rig.post(
                "/1/targets/create.json", {"name": "bad", "target_mode": "email", "where": {}} | body
            )
            listed = await rig.post("/1/targets/list.json", {})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert listed.json()["targets"] == []


async def test_subscribe_api_answers_per_item(tmp_path: Path, warehouse_factory: WarehouseFactory) -> None:
    warehouse = await warehouse_factory("chdb")
    async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, None)) as rig:
        response = await rig.client.post(
            "/1/subscribe/",
            headers=HEADERS,
            content=orjson.dumps(
                {
                    "d": [
                        {"type": "email", "value": "a@example.com", "status": "Unsubscribe"},
                        {"type": "fax", "value": "1", "status": "Unsubscribe"},
                    ]
                }
            ),
        )
    body = response.json()
    assert (response.status_code, body["status"], body["processed"]) == (200, "partial", 1)
    assert body["unprocessed"][0]["error"].endswith("Skipped record number : 2")


async def test_account_frequency_caps_hold_across_campaigns_unless_ignored(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    email = {"target_mode": "email", "where": {}, "content": {"subject": "s", "body": "b"}}
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            account_id, passcode, write_key = str(rig.settings.accounts).split(":")
            await rig.service.store.upsert_account(
                account_id,
                passcode=passcode,
                write_key=write_key,
                region="eu1",
                settings={"frequency_caps": {"email": [{"limit": 1, "window_s": 86400}]}},
            )
            await add_profiles(warehouse, [(f"i:u{i}", {"Email": f"u{i}@example.com"}) for i in range(20)])
            first = await wait_finished(
                rig, (await rig.post("/1/targets/create.json", {"name": "1"} | email)).json()["id"]
            )
            second = await wait_finished(
                rig, (await rig.post("/1/targets/create.json", {"name": "2"} | email)).json()["id"]
            )
            ignoring = await rig.post(
                "/1/targets/create.json", {"name": "3", "respect_frequency_caps": False} | email
            )
            third = await wait_finished(rig, ignoring.json()["id"])
    assert (first["sent"], second["sent"], second["capped"], third["sent"]) == (20, 0, 20, 20)
    assert len(sink.receipts) == 40


async def test_variants_and_control_group_conversions_to_the_goal(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    import time

    warehouse = await warehouse_factory("chdb")
    users = [f"i:u{i}" for i in range(200)]
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, [(u, {"Email": f"{u[2:]}@example.com"}) for u in users])
            created = await rig.post(
                "/messaging/v1/campaigns",
                {
                    "name": "ab",
                    "channel": "email",
                    "where": {},
                    "control_group_percent": 20,
                    "conversion_goal": {"event": "Purchased", "window_s": 3600},
                    "variants": [
                        {
                            "name": "A",
                            "weight": 1,
                            "content": {"subject": "A {{ Campaign.variant }}", "body": "a"},
                        },
                        {
                            "name": "B",
                            "weight": 1,
                            "content": {"subject": "B {{ Campaign.variant }}", "body": "b"},
                        },
                    ],
                },
            )
            campaign_id = created.json()["id"]
            await wait_finished(rig, campaign_id)
            converters = users[::4]
            now = int(time.time() * 1000) + 1000
            await warehouse.insert(
                "events",
                [
                    "account_id",
                    "event_id",
                    "user_key",
                    "name",
                    "ts",
                    "received_at",
                    "source",
                    "properties",
                    "context",
                ],
                [
                    ("TAP-MSG-0001", f"buy-{u}", u, "Purchased", now, now, "clevertap", "{}", "{}")
                    for u in converters
                ],
            )
            response = await rig.client.get(f"/messaging/v1/campaigns/{campaign_id}", headers=HEADERS)
    report = response.json()["campaign"]
    subjects = {str(m["Subject"]) for m in sink.receipts}
    assert subjects == {"A A", "B B"}
    variants = report["variants"]
    assert set(variants) == {"A", "B"}
    assert sum(v["sent"] + v["control"] for v in variants.values()) == 200
    conversions = report["conversions"]
    assert set(conversions) == {"A", "B", "control"}
    assert conversions["control"]["users"] == report["control"] > 0
    assert sum(c["converted"] for c in conversions.values()) == len(converters)
    assert sum(c["users"] for c in conversions.values()) == 200


async def test_sms_campaign_honours_phone_opt_outs(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    from urllib.parse import parse_qs

    warehouse = await warehouse_factory("chdb")
    with http_receiver(lambda _r, n: (201, {"sid": f"SM{n}"})) as twilio:
        url = f"http://AC1:tok@127.0.0.1:{twilio.port}/2010-04-01/Accounts/AC1/Messages.json?From=%2B15550001"
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, None, sms_url=url)) as rig:
            await add_profiles(
                warehouse,
                [
                    ("i:a", {"Phone": "+4915100000001", "Name": "Ann"}),
                    ("i:b", {"Phone": "+4915100000002", "MSG-sms": False}),
                    ("i:c", {"Phone": "+4915100000003", "MSG-dndPhone": True}),
                    ("i:d", {"Phone": "+4915100000004"}),
                    ("i:e", {}),
                ],
            )
            await rig.post(
                "/1/subscribe", {"d": [{"type": "phone", "value": "+4915100000004", "status": "Unsubscribe"}]}
            )
            created = await rig.post(
                "/1/targets/create.json",
                {
                    "name": "sms",
                    "target_mode": "sms",
                    "where": {},
                    "content": {"body": "Hi {{ Profile.Name | default: 'you' }}"},
                },
            )
            campaign = await wait_finished(rig, created.json()["id"])
    forms = [parse_qs(r.body.decode()) for r in twilio.requests]
    assert [(f["To"], f["Body"]) for f in forms] == [(["+4915100000001"], ["Hi Ann"])]
    assert (campaign["sent"], campaign["suppressed"], campaign["no_address"]) == (1, 3, 1)


async def test_a_profile_opt_out_uploaded_after_the_campaign_started_still_counts(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    now = [datetime(2026, 3, 10, 23, 0, tzinfo=UTC)]
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url)
        async with messaging_rig(tmp_path, warehouse, settings, clock=lambda: now[0]) as rig:
            await add_profiles(
                warehouse,
                [
                    (f"i:{name}", {"Email": f"{name}@example.com", "Timezone": "Europe/Berlin"})
                    for name in ("stays", "leaves")
                ],
            )
            created = await rig.post(
                "/messaging/v1/campaigns",
                {
                    "name": "overnight",
                    "channel": "email",
                    "where": {},
                    "quiet_hours": {"start": "22:00", "end": "08:00"},
                    "content": {"subject": "s", "body": "b"},
                },
            )
            await _until(lambda: rig.service.sender.stats.deferred == 2)
            await asyncio.sleep(0.01)  # the opt-out below gets a later timestamp than the snapshot
            await add_profiles(warehouse, [("i:leaves", {"MSG-email": False})])
            now[0] = datetime(2026, 3, 11, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
            campaign = await wait_finished(rig, created.json()["id"])
    assert [str(m["To"]) for m in sink.receipts] == ["stays@example.com"]
    assert (campaign["sent"], campaign["suppressed"]) == (1, 1)


class _StopsAfterFirstChunk:
    """An audience of two chunks that stops its campaign (over the API) between them, as a user would while a
    large audience is still being filled."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.campaign_id = 0
        self.created = asyncio.Event()

    def source(self, audience: Mapping[str, Any]) -> _StopsAfterFirstChunk:
        return self

    async def chunks(self, account_id: str) -> AsyncIterator[Sequence[str]]:
        yield [f"i:u{i}" for i in range(50)]
        await self.created.wait()  # the create call may not have returned the id yet
        stopped = await self.rig.post("/1/targets/stop.json", {"id": self.campaign_id})
        assert stopped.json()["status"] == "success"
        yield [f"i:u{i}" for i in range(50, 100)]

    async def estimate(self, account_id: str) -> int:
        return 100

    async def check(self, account_id: str) -> None:
        return None


async def test_a_campaign_stopped_while_filling_leaves_nothing_pending(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, [(f"i:u{i}", {"Email": f"u{i}@example.com"}) for i in range(100)])
            audience = _StopsAfterFirstChunk(rig)
            rig.service.sender.filler.resolver = audience
            created = await rig.post(
                "/1/targets/create.json",
                {
                    "name": "big",
                    "target_mode": "email",
                    "where": {},
                    "throttle_per_s": 20,
                    "content": {"subject": "s", "body": "b"},
                },
            )
            audience.campaign_id = created.json()["id"]
            audience.created.set()
            campaign = await wait_finished(rig, audience.campaign_id, timeout_s=30)
    assert campaign["status"] == "stopped"
    assert campaign["pending"] == 0
    assert campaign["sent"] == len(sink.receipts) < 100
    assert campaign["sent"] + campaign["stopped"] == 100

"""Behaviour-triggered campaigns on real stores: events published on the bus (the embedded log here, Kafka in
``test_triggers_kafka``) are read by the trigger evaluator's own consumer group, become durable timers and
leave as email to a local SMTP sink."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tapwire_core.bus import Bus
from tapwire_core.envelope import Envelope, Identities, decode
from tapwire_core.envelope_packs import pack
from tapwire_core.identity.graph import IdentityGraph, LinkRequest
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import ACCOUNT, HEADERS, Rig, add_profiles, messaging_rig, settings_for
from tests.messaging.servers import SmtpSink, smtp_sink

pytestmark = pytest.mark.integration

PROFILES = [
    ("i:ann", {"Email": "ann@example.com", "Name": "Ann", "Tier": "gold"}),
    ("i:bob", {"Email": "bob@example.com", "Name": "Bob"}),
]


def event(
    user: str, name: str, properties: Mapping[str, Any] | None = None, *, ids: Identities | None = None
) -> Envelope:
    """An event of ``user`` (an identity), or of whoever ``ids`` names."""
    now = int(time.time() * 1000)
    return Envelope(
        account_id=ACCOUNT,
        event_id=uuid.uuid4().hex,
        kind="event",
        ids=ids or Identities(identity=user),
        client_ts=now,
        received_ts=now,
        source="clevertap",
        name=name,
        properties=dict(properties or {}),
    )


async def publish(rig: Rig, *envelopes: Envelope) -> None:
    """What the gateway does with an upload before its 200: the envelopes are durable on the events topic."""
    assert rig.service.bus is not None
    await publish_on(rig.service.bus, rig.settings.events_topic, rig.settings.topic_partitions, *envelopes)


async def publish_on(bus: Bus, topic: str, partitions: int, *envelopes: Envelope) -> None:
    await bus.ensure_topic(topic, partitions)
    await bus.publish(topic, pack(envelopes, await bus.partitions(topic)), timeout_s=10)


def trigger_campaign(trigger: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "cart reminder",
        "channel": "email",
        "trigger": dict(trigger),
        "content": {"subject": "Still want {{ Event.product }}, {{ Profile.Name }}?", "body": "Come back"},
    } | extra


async def create(rig: Rig, body: Mapping[str, Any]) -> int:
    response = await rig.post("/messaging/v1/campaigns", body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def campaign_view(rig: Rig, campaign_id: int) -> dict[str, Any]:
    response = await rig.client.get(f"/messaging/v1/campaigns/{campaign_id}", headers=HEADERS)
    view: dict[str, Any] = response.json()["campaign"]
    return view


async def timers(rig: Rig, campaign_id: int) -> dict[str, int]:
    """status → the campaign's trigger timers."""
    return {str(k): int(v) for k, v in (await campaign_view(rig, campaign_id))["timers"].items()}


async def until(predicate: Callable[[], Any], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate() if asyncio.iscoroutinefunction(predicate) else predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def subjects(sink: SmtpSink) -> dict[str, list[str]]:
    return {to: sorted(str(m["Subject"]) for m in messages) for to, messages in sink.by_recipient().items()}


async def test_a_matching_event_sends_once_per_user_and_others_send_nothing(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, PROFILES)
            campaign_id = await create(
                rig,
                trigger_campaign(
                    {
                        "event": "Added To Cart",
                        "filters": [{"name": "price", "operator": "greater_than", "value": 10}],
                    }
                ),
            )
            await publish(
                rig,
                event("ann", "Added To Cart", {"product": "shoes", "price": 20}),
                event("bob", "Added To Cart", {"product": "socks", "price": 5}),
                event("bob", "Product Viewed", {"product": "hat", "price": 50}),
            )
            await until(lambda: sink.receipts, "the triggered message")
            # A second matching event of Ann's: once per user, so it is skipped.
            await publish(rig, event("ann", "Added To Cart", {"product": "boots", "price": 30}))

            async def skipped() -> bool:
                return (await timers(rig, campaign_id)).get("skipped") == 1

            await until(skipped, "the second firing to be skipped")
            view = await campaign_view(rig, campaign_id)
    assert subjects(sink) == {"ann@example.com": ["Still want shoes, Ann?"]}
    assert len(sink.receipts) == 1
    assert view["status"] == "running" and view["sent"] == 1
    assert view["timers"] == {"fired": 1, "skipped": 1}
    assert view["trigger"]["event"] == "Added To Cart"


async def test_abandonment_sends_only_to_users_who_did_not_complete_in_time(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url, trigger_grace_s=0.2)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, PROFILES)
            campaign_id = await create(
                rig,
                trigger_campaign(
                    {
                        "event": "Added To Cart",
                        "not_done": {"event": "Charged", "within_s": 2},
                        "frequency": {"mode": "every_time"},
                    }
                ),
            )
            await publish(
                rig,
                event("ann", "Added To Cart", {"product": "shoes"}),
                event("bob", "Added To Cart", {"product": "socks"}),
            )
            await publish(rig, event("ann", "Charged", {"amount": 20}))

            async def settled() -> bool:
                counts = await timers(rig, campaign_id)
                return counts.get("fired", 0) + counts.get("cancelled", 0) == 2

            await until(settled, "both timers to settle")
            await until(lambda: sink.receipts, "bob's reminder")
            view = await campaign_view(rig, campaign_id)
    assert subjects(sink) == {"bob@example.com": ["Still want socks, Bob?"]}
    assert view["timers"] == {"fired": 1, "cancelled": 1}


async def test_a_cart_filled_before_login_is_the_persons_and_the_purchase_after_login_cancels_it(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url, trigger_grace_s=0.2)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, PROFILES)
            graph = IdentityGraph(rig.service.store.engine)
            await graph.link_many(
                ACCOUNT,
                [
                    LinkRequest(("i:ann", "a:anon-ann"), "login"),
                    LinkRequest(("i:bob", "a:anon-bob"), "login"),
                ],
            )
            campaign_id = await create(
                rig,
                trigger_campaign({"event": "Added To Cart", "not_done": {"event": "Charged", "within_s": 2}}),
            )
            await publish(
                rig,
                event("", "Added To Cart", {"product": "shoes"}, ids=Identities(anonymous_id="anon-ann")),
                event("", "Added To Cart", {"product": "socks"}, ids=Identities(anonymous_id="anon-bob")),
            )
            await publish(rig, event("bob", "Charged", {"amount": 20}))

            async def settled() -> bool:
                counts = await timers(rig, campaign_id)
                return counts.get("fired", 0) + counts.get("cancelled", 0) == 2

            await until(settled, "both timers to settle")
            await until(lambda: sink.receipts, "ann's reminder")
            view = await campaign_view(rig, campaign_id)
    # Ann's anonymous cart reached the person, and her profile's address; Bob paid as himself.
    assert subjects(sink) == {"ann@example.com": ["Still want shoes, Ann?"]}
    assert view["timers"] == {"fired": 1, "cancelled": 1}


async def test_at_most_n_per_window_sends_each_firing_as_its_own_message(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, PROFILES)
            campaign_id = await create(
                rig,
                trigger_campaign(
                    {"event": "Added To Cart", "frequency": {"mode": "window", "limit": 2, "window_s": 3600}}
                ),
            )
            for product in ("shoes", "boots", "socks"):
                await publish(rig, event("ann", "Added To Cart", {"product": product}))

            async def settled() -> bool:
                counts = await timers(rig, campaign_id)
                return counts.get("fired", 0) + counts.get("skipped", 0) == 3

            await until(settled, "three firings to settle")
            await until(lambda: len(sink.receipts) == 2, "two messages")
            view = await campaign_view(rig, campaign_id)
            feedback = await _sent_events(rig, campaign_id)
    assert view["timers"] == {"fired": 2, "skipped": 1}
    assert len(sink.by_recipient()["ann@example.com"]) == 2, "two different Message-IDs"
    assert len({m["Message-ID"] for m in sink.receipts}) == 2
    # Each firing has its own Notification Sent (ids derived from the firing), so segments count both.
    assert len(feedback) == 2


async def _sent_events(rig: Rig, campaign_id: int) -> set[str]:
    bus = rig.service.bus
    assert bus is not None
    consumer = bus.consumer([rig.settings.events_topic], f"check-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    found: set[str] = set()
    try:
        for _ in range(40):
            for record in await consumer.fetch(1000, 0.1):
                if record.value[:1] != b"{":
                    continue
                envelope = decode(record.value)
                if envelope.name == "Notification Sent" and envelope.properties["campaign_id"] == campaign_id:
                    found.add(envelope.event_id)
            if len(found) >= 2:
                break
    finally:
        await consumer.close()
    return found


async def test_a_trigger_with_a_segment_sends_only_to_its_members(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, PROFILES)
            where = {"common_profile_properties": {"profile_fields": [{"name": "Tier", "value": "gold"}]}}
            campaign_id = await create(rig, trigger_campaign({"event": "App Launched", "where": where}))
            await publish(
                rig,
                event("bob", "App Launched", {"product": "app"}),
                event("ann", "App Launched", {"product": "app"}),
            )
            await until(lambda: sink.receipts, "the gold member's message")

            async def fired() -> bool:
                # The timer is marked fired just after its outbox row is written, so maybe after the send.
                return (await timers(rig, campaign_id)).get("fired") == 1

            await until(fired, "the timer to be marked fired")
            view = await campaign_view(rig, campaign_id)
    assert subjects(sink) == {"ann@example.com": ["Still want app, Ann?"]}
    assert view["timers"] == {"fired": 1}, "bob was not in the segment, so no timer was written for him"


async def test_stopping_a_triggered_campaign_skips_its_waiting_timers(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, PROFILES)
            campaign_id = await create(rig, trigger_campaign({"event": "Added To Cart", "delay_s": 1.5}))
            await publish(rig, event("ann", "Added To Cart", {"product": "shoes"}))

            async def waiting() -> bool:
                return (await timers(rig, campaign_id)).get("waiting") == 1

            await until(waiting, "the timer")
            stopped = await rig.post(f"/messaging/v1/campaigns/{campaign_id}/stop", {})
            assert stopped.status_code == 200

            async def skipped() -> bool:
                return (await timers(rig, campaign_id)).get("skipped") == 1

            await until(skipped, "the timer to be skipped")
    assert sink.receipts == []


@pytest.mark.parametrize(
    ("trigger", "status", "message"),
    [
        ("Added To Cart", 400, "trigger must be an object"),
        ({}, 422, "trigger.event: Field required"),
        ({"event": "A", "delay_s": -1}, 422, "trigger.delay_s: Input should be greater than or equal to 0"),
        (
            {"event": "A", "frequency": {"mode": "window", "limit": 0, "window_s": 60}},
            422,
            "trigger.frequency",
        ),
        (
            {"event": "A", "filters": [{"name": "p", "operator": "greater_than", "value": "x"}]},
            422,
            "numeric",
        ),
        ({"event": "A", "not_done": {"event": "B"}}, 422, "trigger.not_done.within_s: Field required"),
        ({"event": "A", "segment_id": "nope"}, 422, "segment_id: no saved segment 'nope'"),
        ({"event": "A", "surprise": 1}, 422, "trigger.surprise: Extra inputs are not permitted"),
    ],
)
async def test_invalid_triggers_are_refused_naming_the_field(
    tmp_path: Path, warehouse_factory: WarehouseFactory, trigger: Any, status: int, message: str
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            response = await rig.post("/messaging/v1/campaigns", trigger_campaign({}) | {"trigger": trigger})
            listed = await rig.post("/1/targets/list.json", {})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert listed.json()["targets"] == []

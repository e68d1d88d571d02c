"""Triggers in distributed mode: the evaluator's consumer group on a Kafka broker, timers in PostgreSQL,
restarted while a timer waits.

The messaging process is stopped while a delayed timer waits and while an event is published; a new process on
the same control store and consumer group reads on from the group's commit, fires the waiting timer once, and
evaluates the event published in between.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tapwire_core.bus.kafka import KafkaBus
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import HEADERS, add_profiles, messaging_rig, settings_for
from tests.messaging.servers import smtp_sink
from tests.messaging.test_triggers import (
    PROFILES,
    create,
    event,
    publish,
    publish_on,
    timers,
    trigger_campaign,
    until,
)

pytestmark = pytest.mark.integration


async def test_a_waiting_timer_survives_a_restart_and_fires_once_on_kafka_and_postgresql(
    tmp_path: Path, warehouse_factory: WarehouseFactory, kafka_broker: Any, fresh_postgres_url: str
) -> None:
    warehouse = await warehouse_factory("chdb")
    suffix = uuid.uuid4().hex[:8]
    with smtp_sink() as sink:
        settings = settings_for(
            tmp_path,
            sink.url,
            events_topic=f"events-{suffix}",
            trigger_group=f"triggers-{suffix}",
            topic_partitions=3,
        )
        async with messaging_rig(
            tmp_path, warehouse, settings, bus=KafkaBus(kafka_broker.bootstrap), store_url=fresh_postgres_url
        ) as rig:
            await add_profiles(warehouse, PROFILES)
            campaign_id = await create(
                rig,
                trigger_campaign(
                    {"event": "Added To Cart", "delay_s": 4, "frequency": {"mode": "every_time"}}
                ),
            )
            await publish(rig, event("ann", "Added To Cart", {"product": "shoes"}))

            async def waiting() -> bool:
                return (await timers(rig, campaign_id)).get("waiting") == 1

            await until(waiting, "ann's timer")
        assert sink.receipts == [], "the process stopped before the delay was over"

        # While no evaluator runs: an event the restarted one must read from the group's commit.
        offline = KafkaBus(kafka_broker.bootstrap)
        await offline.start()
        try:
            bob = event("bob", "Added To Cart", {"product": "socks"})
            await publish_on(offline, settings.events_topic, settings.topic_partitions, bob)
        finally:
            await offline.close()

        async with messaging_rig(
            tmp_path, warehouse, settings, bus=KafkaBus(kafka_broker.bootstrap), store_url=fresh_postgres_url
        ) as rig:
            await until(lambda: len(sink.receipts) >= 2, "both messages after the restart", timeout_s=90)

            async def fired() -> bool:
                return (await timers(rig, campaign_id)) == {"fired": 2}

            await until(fired, "both timers fired")
    assert sorted(str(m["To"]) for m in sink.receipts) == ["ann@example.com", "bob@example.com"]


async def test_a_journey_runs_on_kafka_and_postgresql(
    tmp_path: Path, warehouse_factory: WarehouseFactory, kafka_broker: Any, fresh_postgres_url: str
) -> None:
    warehouse = await warehouse_factory("chdb")
    suffix = uuid.uuid4().hex[:8]
    definition = {
        "entry": {"trigger": {"event": "Signed Up"}},
        "start": "welcome",
        "goal": {"event": "Charged"},
        "steps": {
            "welcome": {
                "type": "send",
                "channel": "email",
                "content": {"subject": "Welcome", "body": "Hi"},
                "next": "pause",
            },
            "pause": {"type": "wait", "duration_s": 2, "next": "gold?"},
            "gold?": {"type": "condition", "profile": {"name": "Tier", "value": "gold"}, "yes": "vip"},
            "vip": {"type": "send", "channel": "email", "content": {"subject": "Perks", "body": "Hi"}},
        },
    }
    with smtp_sink() as sink:
        settings = settings_for(
            tmp_path,
            sink.url,
            events_topic=f"events-{suffix}",
            trigger_group=f"triggers-{suffix}",
            topic_partitions=3,
        )
        bus = KafkaBus(kafka_broker.bootstrap)
        async with messaging_rig(tmp_path, warehouse, settings, bus=bus, store_url=fresh_postgres_url) as rig:
            await add_profiles(
                warehouse, [*PROFILES, ("i:cat", {"Email": "cat@example.com", "Tier": "gold"})]
            )
            created = await rig.post(
                "/messaging/v1/journeys", {"name": "onboarding", "definition": definition}
            )
            assert created.status_code == 201, created.text
            await publish(rig, *(event(user, "Signed Up") for user in ("ann", "bob", "cat")))
            await until(lambda: len(sink.receipts) >= 3, "three welcomes")
            await publish(rig, event("cat", "Charged", {"amount": 5}))
            await until(lambda: len(sink.receipts) >= 4, "ann's perks", timeout_s=90)

            async def steps_now() -> dict[str, dict[str, int]]:
                response = await rig.client.get(
                    f"/messaging/v1/journeys/{created.json()['id']}", headers=HEADERS
                )
                found: dict[str, dict[str, int]] = response.json()["journey"]["steps"]
                return found

            async def all_ended() -> bool:
                return sum(s["exited"] + s["converted"] for s in (await steps_now()).values()) == 3

            await until(all_ended, "every position to end")
            steps = await steps_now()
    mailbox = {
        to: sorted(str(m["Subject"]) for m in messages) for to, messages in sink.by_recipient().items()
    }
    assert mailbox == {
        "ann@example.com": ["Perks", "Welcome"],
        "bob@example.com": ["Welcome"],
        "cat@example.com": ["Welcome"],
    }
    assert steps["pause"]["converted"] == 1 and steps["gold?"]["entered"] == 2

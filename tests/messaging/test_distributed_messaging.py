"""``tapwire serve messaging`` in distributed mode: two processes sharing one PostgreSQL outbox (their claims
skip each other's rows), ClickHouse over HTTP for recipients, Kafka for feedback events."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tapwire_core.bus.kafka import KafkaBus
from tapwire_core.envelope import decode
from tests.credentials import CREDENTIAL_SECRET
from tests.integration.processes import TapwireProcess
from tests.messaging.servers import http_receiver

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-DMSG-0001", "passcode-dmsg-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
USERS = 300


@pytest.fixture
def env(kafka_broker: Any, fresh_postgres_url: str, clickhouse_database_url: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "TAPWIRE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "TAPWIRE_DATABASE_URL": fresh_postgres_url,
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_CLICKHOUSE_URL": clickhouse_database_url,
        "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-dmsg-{suffix}-0123456789",
        "TAPWIRE_EVENTS_TOPIC": f"events-{suffix}",
        "TAPWIRE_DEAD_LETTER_TOPIC": f"events-dlq-{suffix}",
        "TAPWIRE_TOPIC_PARTITIONS": "4",
        "TAPWIRE_MESSAGING_SECRET": "distributed-secret-0123456789abcdef",
        "TAPWIRE_MESSAGING_CLAIM_BATCH": "20",
        "TAPWIRE_EGRESS_ALLOW": "127.0.0.1/32",
        "TAPWIRE_LOG_LEVEL": "WARNING",
    }


def test_messaging_refuses_to_start_without_its_link_secret(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tapwire_services.cli", "serve", "messaging"],
        env={k: v for k, v in env.items() if k != "TAPWIRE_MESSAGING_SECRET"} | {"PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "TAPWIRE_MESSAGING_SECRET is required" in done.stderr


def test_two_processes_share_the_outbox_and_deliver_each_message_once(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with http_receiver() as receiver:
        first = TapwireProcess(["serve", "messaging"], env, tmp_path / "m1.log").start()
        second = TapwireProcess(["serve", "messaging"], env, tmp_path / "m2.log").start()
        try:
            first.wait_ready()
            second.wait_ready()
            response = httpx.post(
                f"{first.url}/1/send/webhook.json",
                headers=HEADERS,
                json={
                    "to": {"Identity": [f"user{i}" for i in range(USERS)]},
                    "content": {"body": "Hello {{ Profile.Name | default: 'friend' }}"},
                    "webhook": {"url": f"{receiver.url}/hook", "secret": "hook-secret-0123456789"},
                },
                timeout=30,
            )
            assert response.status_code == 200, response.text
            campaign_id = response.json()["id"]
            deadline = time.monotonic() + 120
            campaign: dict[str, Any] = {}
            while time.monotonic() < deadline:
                campaign = httpx.get(
                    f"{second.url}/messaging/v1/campaigns/{campaign_id}", headers=HEADERS, timeout=10
                ).json()["campaign"]
                if campaign["status"] == "completed":
                    break
                time.sleep(0.2)
        finally:
            first.stop()
            second.stop()
    assert campaign["status"] == "completed" and campaign["sent"] == USERS
    per_user = Counter(r.json()["user_key"] for r in receiver.requests)
    assert len(per_user) == USERS and set(per_user.values()) == {1}
    sent_events = asyncio.run(_feedback(env, USERS))
    assert Counter(e.name for e in sent_events) == {"Notification Sent": USERS}
    assert {e.properties["campaign_id"] for e in sent_events} == {campaign_id}


async def _feedback(env: dict[str, str], expected: int) -> list[Any]:
    bus = KafkaBus(env["TAPWIRE_KAFKA_BOOTSTRAP"])
    await bus.start()
    consumer = bus.consumer([env["TAPWIRE_EVENTS_TOPIC"]], f"check-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    found: list[Any] = []
    try:
        for _ in range(300):
            found += [decode(d.value) for d in await consumer.fetch(1000, 0.2)]
            if len(found) >= expected:
                break
    finally:
        await consumer.close()
        await bus.close()
    return found

"""Distributed mode: Segment messages through ``tapwire serve gateway`` (identity graph on PostgreSQL), Kafka,
``serve loader`` and ClickHouse (the HTTP rig), read back merged through ``serve query``."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.credentials import CREDENTIAL_SECRET
from tests.integration.test_distributed_pipeline import Cluster

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-SEG-DIST", "passcode-segdist-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}


@pytest.fixture
def write_key() -> str:
    return f"writekey-segdist-{uuid.uuid4().hex}"


@pytest.fixture
def cluster(
    tmp_path: Path, kafka_broker: Any, fresh_postgres_url: str, clickhouse_database_url: str, write_key: str
) -> Iterator[Cluster]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "TAPWIRE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "TAPWIRE_DATABASE_URL": fresh_postgres_url,
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_CLICKHOUSE_URL": clickhouse_database_url,
        "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:{write_key}",
        "TAPWIRE_EVENTS_TOPIC": f"seg-events-{suffix}",
        "TAPWIRE_DEAD_LETTER_TOPIC": f"seg-events-dlq-{suffix}",
        "TAPWIRE_TOPIC_PARTITIONS": "4",
        "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
    }
    services = Cluster(tmp_path, env)
    try:
        for proc in (services.gateway, services.query, services.loader):
            proc.start()
        for proc in (services.gateway, services.query, services.loader):
            proc.wait_ready()
        yield services
    finally:
        services.stop_all()


def test_anonymous_events_count_for_the_identified_user(cluster: Cluster, write_key: str) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    stamp = "2026-01-05T10:00:00.000Z"
    batch = [
        {
            "type": "track",
            "anonymousId": "visitor-1",
            "event": "Viewed",
            "messageId": "m1",
            "timestamp": stamp,
        },
        {
            "type": "track",
            "anonymousId": "visitor-1",
            "event": "Viewed",
            "messageId": "m2",
            "timestamp": stamp,
        },
        {
            "type": "identify",
            "userId": "dana",
            "anonymousId": "visitor-1",
            "traits": {"email": "dana@example.org"},
            "messageId": "m3",
            "timestamp": stamp,
        },
        {"type": "track", "userId": "dana", "event": "Viewed", "messageId": "m4", "timestamp": stamp},
        {"type": "track", "event": "Viewed", "messageId": "invalid: no user"},
    ]
    # No sentAt: a historical import, whose timestamps are kept as sent (no clock-skew correction).
    body = orjson.dumps({"batch": batch})
    for _ in range(2):  # an SDK retrying the same batch: every messageId is stored once
        response = httpx.post(f"{cluster.gateway.url}/v1/batch", headers=basic, content=body, timeout=10)
        assert response.status_code == 200, response.text

    record: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = httpx.get(f"{cluster.query.url}/1/profile.json?identity=dana", headers=HEADERS, timeout=10)
        if response.status_code == 200:
            record = response.json()["record"]
            if record["events"].get("Viewed", {}).get("count") == 3 and record.get("profileData"):
                break
        time.sleep(0.2)
    assert record["events"]["Viewed"]["count"] == 3
    assert record["profileData"] == {"Email": "dana@example.org"}
    assert record["email"] == "dana@example.org"
    counts = httpx.post(
        f"{cluster.query.url}/1/counts/events.json",
        headers=HEADERS,
        json={"event_name": "Viewed", "from": 20260105, "to": 20260105},
        timeout=10,
    )
    assert counts.json()["count"] == 3

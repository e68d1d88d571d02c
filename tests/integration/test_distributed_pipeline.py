"""Distributed mode end to end: ``tapwire serve gateway|loader|query`` as processes over a real Kafka broker,
PostgreSQL and ClickHouse reached over HTTP (the chDB-backed rig)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
import pytest

from tapwire_core.bus import Record
from tapwire_core.bus.kafka import KafkaBus
from tapwire_core.envelope import Envelope, Identities, decode, encode
from tests.credentials import CREDENTIAL_SECRET
from tests.integration.processes import TapwireProcess

ACCOUNT, PASSCODE = "TAP-DIST-0001", "passcode-dist-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
JAN_5 = 1_767_571_200

pytestmark = pytest.mark.integration


class Cluster:
    """The three services sharing one environment; each can be started, killed and restarted."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.gateway = TapwireProcess(["serve", "gateway"], env, tmp / "gateway.log")
        self.query = TapwireProcess(["serve", "query"], env, tmp / "query.log")
        self.loader = self.new_loader()

    def new_loader(self, **extra: str) -> TapwireProcess:
        return TapwireProcess(["serve", "loader"], self.env | extra, self.tmp / "loader.log")

    def stop_all(self) -> None:
        for proc in (self.gateway, self.query, self.loader):
            proc.kill()


@pytest.fixture
def env(kafka_broker: Any, fresh_postgres_url: str, clickhouse_database_url: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "TAPWIRE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "TAPWIRE_DATABASE_URL": fresh_postgres_url,
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_CLICKHOUSE_URL": clickhouse_database_url,
        "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-dist-{suffix}-0123456789",
        "TAPWIRE_EVENTS_TOPIC": f"events-{suffix}",
        "TAPWIRE_DEAD_LETTER_TOPIC": f"events-dlq-{suffix}",
        "TAPWIRE_TOPIC_PARTITIONS": "4",
        "TAPWIRE_BUS_TIMEOUT_S": "3",
        "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
    }


@pytest.fixture
def cluster(tmp_path: Path, env: dict[str, str]) -> Iterator[Cluster]:
    services = Cluster(tmp_path, env)
    try:
        for proc in (services.gateway, services.query, services.loader):
            proc.start()
        for proc in (services.gateway, services.query, services.loader):
            proc.wait_ready()
        yield services
    finally:
        services.stop_all()


def upload(url: str, records: list[dict[str, Any]], timeout: float = 10) -> httpx.Response:
    return httpx.post(f"{url}/1/upload", headers=HEADERS, json={"d": records}, timeout=timeout)


def events(prefix: str, count: int, name: str = "Bought") -> list[dict[str, Any]]:
    return [
        {
            "type": "event",
            "identity": f"u{i % 13}",
            "ts": JAN_5 + i % 3600,
            "evtName": name,
            "evtData": {"n": i},
            "evtId": f"{prefix}-{i}",
        }
        for i in range(count)
    ]


def warehouse_counts(clickhouse_url: str, name: str) -> tuple[int, int, int]:
    """(rows after dedup, distinct event ids, raw rows) for ``name`` — read straight from ClickHouse."""
    client = clickhouse_connect.get_client(dsn=clickhouse_url, compress=False)
    try:
        final = client.query(
            "SELECT count(), uniqExact(event_id) FROM events FINAL WHERE account_id = {a:String} AND name = {n:String}",
            parameters={"a": ACCOUNT, "n": name},
        ).result_rows[0]
        raw = client.query(
            "SELECT count() FROM events WHERE account_id = {a:String} AND name = {n:String}",
            parameters={"a": ACCOUNT, "n": name},
        ).result_rows[0][0]
    finally:
        client.close()
    return int(final[0]), int(final[1]), int(raw)


def loader_event_rows(loader: TapwireProcess) -> float:
    for line in httpx.get(f"{loader.url}/metrics").text.splitlines():
        if line.startswith('tapwire_loader_rows_total{table="events"}'):
            return float(line.split()[-1])
    return 0.0


def wait_until(predicate: Any, timeout_s: float = 60, what: str = "condition", poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")


def test_upload_is_visible_through_the_query_service(cluster: Cluster) -> None:
    profile = {
        "type": "profile",
        "identity": "u1",
        "ts": JAN_5,
        "profileData": {"Email": "u1@example.com", "Tier": "gold"},
    }
    response = upload(cluster.gateway.url, [*events("vis", 26), profile])
    assert response.status_code == 200 and response.json()["processed"] == 27

    def counted() -> bool:
        body = {"event_name": "Bought", "from": 20260101, "to": 20260131}
        response = httpx.post(f"{cluster.query.url}/1/counts/events.json", headers=HEADERS, json=body)
        count: object = response.json().get("count")
        return count == 26

    wait_until(counted, what="26 events in counts")
    # A batch's tables are written one after another, so the profile may trail its events by one insert.
    lookup = f"{cluster.query.url}/1/profile.json?email=u1@example.com"
    wait_until(lambda: httpx.get(lookup, headers=HEADERS).status_code == 200, what="the profile")
    record = httpx.get(lookup, headers=HEADERS).json()["record"]
    assert record["identity"] == "u1"
    assert record["profileData"] == {"Email": "u1@example.com", "Tier": "gold"}
    assert record["events"]["Bought"]["count"] == 2


def test_loader_killed_mid_batch_then_redelivered(cluster: Cluster, env: dict[str, str]) -> None:
    cluster.loader.kill()
    total = 30_000
    records = events("kill", total)
    for chunk in range(0, total, 1000):
        assert upload(cluster.gateway.url, records[chunk : chunk + 1000]).status_code == 200

    # Each loader is awaited ready before its work is: the waits below bound the work, not a start-up.
    slow = cluster.new_loader(TAPWIRE_LOADER_BATCH_ROWS="200", TAPWIRE_LOADER_BATCH_SECONDS="0.05").start()
    slow.wait_ready()
    url = env["TAPWIRE_CLICKHOUSE_URL"]
    wait_until(lambda: warehouse_counts(url, "Bought")[2] > 0, what="the first batch", poll_s=0.01)
    slow.kill()
    assert warehouse_counts(url, "Bought")[0] < total, "the loader finished before it was killed"

    restarted = cluster.new_loader().start()
    restarted.wait_ready()
    wait_until(lambda: warehouse_counts(url, "Bought")[0] >= total, what="all rows after restart")
    restarted.kill()
    assert warehouse_counts(url, "Bought")[:2] == (total, total)

    # Redeliver everything: a loader in a fresh consumer group replays the topic from the start.
    replay = cluster.new_loader(TAPWIRE_LOADER_GROUP="replay-" + uuid.uuid4().hex[:6]).start()
    replay.wait_ready()
    # Raw row counts cannot tell when the replay is done (background merges collapse duplicates), so ask the
    # replaying loader how many event rows it wrote.
    wait_until(lambda: loader_event_rows(replay) >= total, what="the replayed rows")
    replay.kill()
    assert warehouse_counts(url, "Bought")[:2] == (total, total)


def test_kafka_down_means_503_then_recovery(cluster: Cluster, kafka_broker: Any, env: dict[str, str]) -> None:
    assert upload(cluster.gateway.url, events("before", 10)).status_code == 200
    kafka_broker.stop()
    try:
        started = time.monotonic()
        response = upload(cluster.gateway.url, events("during", 10), timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.json()["code"] == 503 and int(response.headers["retry-after"]) > 0
        assert elapsed < float(env["TAPWIRE_BUS_TIMEOUT_S"]) + 2.0
    finally:
        kafka_broker.start()

    # A 503 promises nothing either way (some records may have reached the log); the client retries the same
    # batch, as real clients do, and event-id deduplication makes the retry land exactly once.
    def retried() -> bool:
        return upload(cluster.gateway.url, events("during", 10)).status_code == 200

    wait_until(retried, timeout_s=60, what="the gateway to accept again")
    url = env["TAPWIRE_CLICKHOUSE_URL"]
    wait_until(lambda: warehouse_counts(url, "Bought")[0] >= 20, what="events before and after the outage")
    time.sleep(1.0)  # let any straggling duplicate of the retried batch arrive before counting
    assert warehouse_counts(url, "Bought")[:2] == (20, 20)


def test_poison_record_goes_to_dead_letter_topic(
    cluster: Cluster, env: dict[str, str], kafka_broker: Any
) -> None:
    async def poison_then_read() -> list[Any]:
        bus = KafkaBus(kafka_broker.bootstrap)
        await bus.start()
        try:
            # A pack with one malformed member between two good ones, as a buggy producer might send.
            good = [Envelope(**(base | {"event_id": f"packed-{i}"})) for i in range(5)]
            broken = b"[" + encode(good[0]) + b',{"account_id":7},' + encode(good[1]) + b"]"
            # And one whose members all decode, but one names no user: the warehouse cannot take it.
            anonymous = Envelope(**(base | {"event_id": "nobody", "ids": Identities()}))
            unstorable = b"[" + b",".join(encode(e) for e in (good[2], anonymous, good[3])) + b"]"
            # And a pack of events the loader hands to ClickHouse as JSON, which refuses it (a key given twice,
            # which the loader's decoder takes): the batch is stored record by record, and nothing is lost.
            twice = b"[" + encode(good[4])[:-1] + b',"name":"Bought"}]'
            await bus.publish(
                env["TAPWIRE_EVENTS_TOPIC"],
                [
                    Record(key=b"k", value=b"\x00not an envelope"),
                    Record(key=good[0].partition_key(), value=broken),
                    Record(key=good[2].partition_key(), value=unstorable),
                    Record(key=good[4].partition_key(), value=twice),
                ],
                timeout_s=10,
            )
            consumer = bus.consumer([env["TAPWIRE_DEAD_LETTER_TOPIC"]], "dlq-reader-" + uuid.uuid4().hex[:6])
            await consumer.start()
            try:
                deadline = time.monotonic() + 60
                got: list[Any] = []
                while time.monotonic() < deadline and len(got) < 3:
                    got += await consumer.fetch(max_records=10, timeout_s=1)
                return got
            finally:
                await consumer.close()
        finally:
            await bus.close()

    base: dict[str, Any] = {
        "account_id": ACCOUNT,
        "kind": "event",
        "ids": Identities(identity="packed-user"),
        "client_ts": JAN_5 * 1000,
        "received_ts": JAN_5 * 1000,
        "source": "clevertap",
        "name": "Bought",
        "properties": {"packed": True},
    }
    assert upload(cluster.gateway.url, events("around", 5)).status_code == 200
    # Decode failures first (poison before the broken member), then the unstorable member.
    dead = sorted(
        asyncio.run(poison_then_read()),
        key=lambda d: (dict(d.headers)["tapwire-reason-category"] != b"decode", d.value),
    )
    assert [d.value for d in dead[:2]] == [b"\x00not an envelope", b'{"account_id":7}']
    for letter in dead[:2]:
        headers = dict(letter.headers)
        assert headers["tapwire-origin-topic"].decode() == env["TAPWIRE_EVENTS_TOPIC"]
        assert b"undecodable" in headers["tapwire-reason"]
    assert dict(dead[1].headers)["tapwire-pack-index"] == b"1"
    assert decode(dead[2].value).event_id == "nobody"
    assert dict(dead[2].headers)["tapwire-pack-index"] == b"1"
    assert dict(dead[2].headers)["tapwire-reason-category"] == b"invalid"
    url = env["TAPWIRE_CLICKHOUSE_URL"]
    wait_until(
        lambda: warehouse_counts(url, "Bought")[0] == 10,
        what="valid neighbours of the poison record and of the broken pack member, and the refused pack",
    )
    metrics = httpx.get(f"{cluster.loader.url}/metrics").text
    assert 'tapwire_dead_letters_total{reason="decode"} 2.0' in metrics
    assert 'tapwire_dead_letters_total{reason="invalid"} 1.0' in metrics

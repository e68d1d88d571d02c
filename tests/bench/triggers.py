"""Triggers benchmark: from an upload's 200 to the SMTP sink, and the evaluator's events per second.

``python -m tests.bench.triggers`` prints one JSON line:

- ``trigger_to_send_p50_ms`` / ``trigger_to_send_p99_ms``: a real ``tapwire up`` (gateway, loader, messaging on
  the embedded log) with 100 live triggers; ``BENCH_TRIGGER_SENDS`` (default 300) uploads of one
  ``Added To Cart`` event each, for as many users, ``BENCH_TRIGGER_RATE`` (default 20) per second. Each latency
  runs from the upload's 200 to the receipt at an SMTP sink in its own process (both wall clock, one machine).
- ``trigger_events_per_s``: the trigger evaluator alone (its own consumer group on an embedded log, a SQLite
  control store) reading ``BENCH_TRIGGER_EVENTS`` (default 300,000) events against 100 live triggers, one in
  a hundred events matching one of them: from the evaluator's start until every event was evaluated and its timers
  and offsets written.

Beside them, the references: ``send_api_to_sink_p50_ms`` / ``send_api_to_sink_p99_ms``, the same suite's
transactional sends (``BENCH_TRIGGER_REFERENCE_SENDS``, default 50) from their 200 to the sink, and
``trigger_bare_consume_events_per_s``, a consumer group of its own fetching, decoding and committing the same
records without matching anything.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from tapwire_core.bus import TopicPartition
from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.clock import system_clock
from tapwire_core.control.store import ControlStore
from tapwire_core.envelope import Envelope, Identities, decode_properties
from tapwire_core.envelope_packs import decode_pack, pack
from tapwire_core.settings import Settings
from tapwire_messaging.campaign_store import Campaigns
from tapwire_messaging.campaigns import parse_campaign
from tapwire_messaging.triggers.evaluator import FETCH_RECORDS, TriggerEvaluator
from tapwire_services.accounts import announce_accounts
from tests.bench.messaging import SinkProcess
from tests.integration.processes import TapwireProcess

ACCOUNT, PASSCODE = "TAP-BTRG-0001", "passcode-btrg-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
TRIGGERS = 100
SENDS = int(os.environ.get("BENCH_TRIGGER_SENDS", "300"))
RATE = float(os.environ.get("BENCH_TRIGGER_RATE", "20"))
EVENTS = int(os.environ.get("BENCH_TRIGGER_EVENTS", "300000"))
MATCH_EVERY = 100
# Transactional sends measured beside the triggered ones: the same pipeline without event, trigger or timer.
REFERENCE_SENDS = int(os.environ.get("BENCH_TRIGGER_REFERENCE_SENDS", "50"))


def log(message: str) -> None:
    print(f"[bench:triggers] {message}", file=sys.stderr, flush=True)


def trigger_body(index: int) -> dict[str, Any]:
    """Trigger ``index`` of the 100: number 0 reacts to ``Added To Cart``, the others to events of their own."""
    event = "Added To Cart" if index == 0 else f"Bench Event {index}"
    return {
        "name": f"trigger {index}",
        "channel": "email",
        "trigger": {
            "event": event,
            "filters": [{"name": "price", "operator": "greater_than", "value": 10}],
            "frequency": {"mode": "every_time"},
        },
        "content": {"subject": "Your {{ Event.product }}", "body": "is waiting"},
    }


async def _latency(url: str, sink: SinkProcess) -> tuple[dict[str, float], dict[str, float], int]:
    """(trigger latencies, reference latencies, triggered messages missing), by recipient."""
    users = [f"u{i}" for i in range(SENDS)] + [f"r{i}" for i in range(REFERENCE_SENDS)]
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
        for start in range(0, len(users), 1000):
            profiles = [
                {"type": "profile", "identity": user, "profileData": {"Email": f"{user}@bench.example"}}
                for user in users[start : start + 1000]
            ]
            assert (await client.post("/1/upload", json={"d": profiles})).json()["processed"] == len(profiles)
        estimate = {
            "name": "x",
            "target_mode": "email",
            "where": {},
            "content": {"subject": "s", "body": "b"},
        }
        for _ in range(600):
            reach = (await client.post("/1/targets/estimate.json", json=estimate)).json()["estimate"]["reach"]
            if reach == len(users):
                break
            await asyncio.sleep(0.2)
        for index in range(TRIGGERS):
            created = await client.post("/messaging/v1/campaigns", json=trigger_body(index))
            assert created.status_code == 201, created.text
        await asyncio.sleep(1.0)  # every process's evaluator has read the live triggers
        acked: dict[str, float] = {}
        began = time.monotonic()
        for i in range(SENDS):
            await asyncio.sleep(max(0.0, began + i / RATE - time.monotonic()))
            record = {
                "type": "event",
                "identity": f"u{i}",
                "evtName": "Added To Cart",
                "evtData": {"product": f"item {i}", "price": 20},
            }
            response = await client.post("/1/upload", json={"d": [record]})
            acked[f"u{i}@bench.example"] = time.time()
            assert response.status_code == 200 and response.json()["processed"] == 1, response.text
        # The reference: the same pipeline from a transactional send's 200 (no event, no trigger, no timer).
        posted: dict[str, float] = {}
        began = time.monotonic()
        for i in range(REFERENCE_SENDS):
            await asyncio.sleep(max(0.0, began + i / RATE - time.monotonic()))
            body = {"to": {"Identity": [f"r{i}"]}, "content": {"subject": "Receipt", "body": "Thanks"}}
            response = await client.post("/1/send/email.json", json=body)
            posted[f"r{i}@bench.example"] = time.time()
            assert response.status_code == 200, response.text
        await asyncio.sleep(10)  # the last messages' way to the sink, with room for a slow one
    received: dict[str, float] = {}
    for ts, to, _mid in sink.receipts():
        received.setdefault(to, ts)
    missing = len(set(acked) - set(received))

    def since(sent: dict[str, float]) -> dict[str, float]:
        return {to: (received[to] - sent[to]) * 1000 for to in sent if to in received}

    return since(acked), since(posted), missing


def bench_latency(work: Path) -> dict[str, Any]:
    sink = SinkProcess(work)
    env = {
        "TAPWIRE_DATA_DIR": str(work / "data"),
        "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-btrg-0123456789abcdef",
        "TAPWIRE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        "TAPWIRE_EMAIL_FROM": "news@bench.example",
        "TAPWIRE_MESSAGING_SECRET": "btrg-bench-secret-0123456789abcdef",
        "TAPWIRE_LOG_LEVEL": "WARNING",
    }
    suite = TapwireProcess(["up"], env, work / "suite.log").start()
    try:
        suite.wait_ready()
        latencies, reference, missing = asyncio.run(_latency(suite.url, sink))
    finally:
        suite.stop()

    def percentile(values: dict[str, float], p: float) -> float:
        ordered = sorted(values.values())
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")

    log(
        f"  {len(latencies)} messages, {missing} missing; p50 {percentile(latencies, 50):.0f} ms, "
        f"p99 {percentile(latencies, 99):.0f} ms; reference (transactional send) p50 "
        f"{percentile(reference, 50):.0f} ms, p99 {percentile(reference, 99):.0f} ms"
    )
    return {
        "trigger_to_send_p50_ms": round(percentile(latencies, 50), 1),
        "trigger_to_send_p99_ms": round(percentile(latencies, 99), 1),
        "trigger_sends_missing": missing,
        "send_api_to_sink_p50_ms": round(percentile(reference, 50), 1),
        "send_api_to_sink_p99_ms": round(percentile(reference, 99), 1),
    }


def _events(total: int) -> list[Envelope]:
    now = int(time.time() * 1000)
    names = [f"Bench Event {i}" for i in range(1, TRIGGERS)] + ["Other Event"]
    envelopes = []
    for i in range(total):
        matching = i % MATCH_EVERY == 0
        envelopes.append(
            Envelope(
                account_id=ACCOUNT,
                event_id=uuid.uuid4().hex,
                kind="event",
                ids=Identities(identity=f"u{i % 10_000}"),
                client_ts=now,
                received_ts=now,
                source="clevertap",
                # Every event names a live trigger's event or a neighbour; one in a hundred passes its filter.
                name=names[i % len(names)],
                properties={"product": f"item {i}", "price": 20 if matching else 5, "n": i},
            )
        )
    return envelopes


async def _throughput(work: Path) -> dict[str, Any]:
    settings = Settings(data_dir=work / "tp", accounts=f"{ACCOUNT}:{PASSCODE}:writekey-btrg-0123456789abcdef")
    store = ControlStore(f"sqlite+aiosqlite:///{work / 'tp-control.db'}")
    await store.start()
    bus = EmbeddedBus(work / "tp-log")
    await bus.start()
    try:
        await announce_accounts(store, settings, embedded=True)
        campaigns = Campaigns(store.engine)
        start_ms = int(time.time() * 1000) - 60_000
        for index in range(TRIGGERS):
            await campaigns.create(ACCOUNT, parse_campaign(trigger_body(index), now_ms=start_ms))
        topic = settings.events_topic
        await bus.ensure_topic(topic, settings.topic_partitions)
        partitions = await bus.partitions(topic)
        events = _events(EVENTS)
        for start in range(0, len(events), 1000):
            await bus.publish(topic, pack(events[start : start + 1000], partitions), timeout_s=30)
        log(f"  {len(events)} events published; evaluating against {TRIGGERS} triggers")
        evaluator = TriggerEvaluator(
            bus=bus,
            engine=store.engine,
            store=store,
            warehouse=None,
            settings=settings,
            clock=system_clock,
            on_due=lambda: None,
        )
        stopping = asyncio.Event()
        # The embedded log's consumer joins at once, so the clock starts with the evaluator.
        began = time.perf_counter()
        task = asyncio.create_task(evaluator.run(stopping))
        while evaluator.stats.committed < len(events):  # noqa: ASYNC110 (a counter, no event to wait on)
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - began
        stopping.set()
        await task
        rate = len(events) / elapsed
        reference = await _bare_consume_rate(bus, topic, len(events))
        log(
            f"  {rate:.0f} events/s, {evaluator.stats.timers} timers written; "
            f"a bare consumer decoding the same records: {reference:.0f} events/s"
        )
        return {
            "trigger_events_per_s": round(rate),
            "trigger_timers_written": evaluator.stats.timers,
            "trigger_bare_consume_events_per_s": round(reference),
        }
    finally:
        await bus.close()
        await store.close()


async def _bare_consume_rate(bus: EmbeddedBus, topic: str, total: int) -> float:
    """The reference for the evaluator: a consumer group of its own fetching, decoding (every envelope, with its
    properties) and committing the same records, matching nothing."""
    consumer = bus.consumer([topic], f"bench-bare-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    seen = 0
    began = time.perf_counter()
    try:
        while seen < total:
            records = await consumer.fetch(FETCH_RECORDS, 0.2)
            for record in records:
                for envelope in decode_pack(record.value):
                    decode_properties(envelope.properties)
                    seen += 1
            if records:
                offsets: dict[TopicPartition, int] = {}
                for record in records:
                    offsets[record.tp] = max(offsets.get(record.tp, 0), record.offset + 1)
                await consumer.commit(offsets)
    finally:
        await consumer.close()
    return seen / (time.perf_counter() - began)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="tapwire-bench-triggers-"))
    try:
        log(f"evaluator: {EVENTS} events against {TRIGGERS} live triggers")
        figures = asyncio.run(_throughput(work))
        log(f"upload → trigger → SMTP sink: {SENDS} sends at {RATE:g}/s beside {TRIGGERS} live triggers")
        figures |= bench_latency(work)
        figures["trigger_load_avg_1m"] = round(os.getloadavg()[0], 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()

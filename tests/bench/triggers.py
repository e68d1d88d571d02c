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

from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.clock import system_clock
from tapwire_core.control.store import ControlStore
from tapwire_core.envelope import Envelope, Identities
from tapwire_core.envelope_packs import pack
from tapwire_core.settings import Settings
from tapwire_messaging.campaign_store import Campaigns
from tapwire_messaging.campaigns import parse_campaign
from tapwire_messaging.triggers.evaluator import TriggerEvaluator
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


async def _latency(url: str, sink: SinkProcess) -> tuple[dict[str, float], int]:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
        for start in range(0, SENDS, 1000):
            profiles = [
                {"type": "profile", "identity": f"u{i}", "profileData": {"Email": f"u{i}@bench.example"}}
                for i in range(start, min(SENDS, start + 1000))
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
            if reach == SENDS:
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
        await asyncio.sleep(10)  # the last messages' way to the sink, with room for a slow one
    received: dict[str, float] = {}
    for ts, to, _mid in sink.receipts():
        received.setdefault(to, ts)
    missing = len(set(acked) - set(received))
    return {to: (received[to] - acked[to]) * 1000 for to in acked if to in received}, missing


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
        latencies, missing = asyncio.run(_latency(suite.url, sink))
    finally:
        suite.stop()
    ordered = sorted(latencies.values())

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")

    log(
        f"  {len(ordered)} messages, {missing} missing; p50 {percentile(50):.0f} ms, p99 {percentile(99):.0f} ms"
    )
    return {
        "trigger_to_send_p50_ms": round(percentile(50), 1),
        "trigger_to_send_p99_ms": round(percentile(99), 1),
        "trigger_sends_missing": missing,
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
        log(f"  {rate:.0f} events/s, {evaluator.stats.timers} timers written")
        return {"trigger_events_per_s": round(rate), "trigger_timers_written": evaluator.stats.timers}
    finally:
        await bus.close()
        await store.close()


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

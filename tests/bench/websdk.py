"""Web SDK requests into one gateway process: ``GET /a`` JSONP requests of one event each, as clevertap.js
sends them, into ``tapwire serve gateway`` on a real KRaft broker.

Every ``d`` is made by the SDK's own ``compressToBase64`` (the installed clevertap-web-sdk, under Node), for
distinct events of 10,000 browsers; each request is sent at most once, so every 200 is a distinct event the
gateway answered only once Kafka had it (``acks=all``). After the run the topic is read back and its events
counted: every answered request must be there. ``python -m tests.bench.websdk`` runs it alone (figures as the
JSON last line); ``BENCH_ONLY=websdk make bench`` runs it inside the benchmark report.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import uvloop

from tapwire_core.bus.kafka import KafkaBus
from tapwire_core.envelope import decode
from tapwire_core.envelope_packs import is_pack, split_pack
from tests.bench.gateways import gateway_processes
from tests.bench.loadgen import LoadResult, drive_requests
from tests.credentials import CREDENTIAL_SECRET
from tests.infra.kafka_broker import KafkaBroker, kafka_home

ACCOUNT, PASSCODE = "TAP-BENCH-WEB1", "passcode-bench-web-0123456789ab"
ACCOUNTS = f"{ACCOUNT}:{PASSCODE}:writekey-bench-web-0123456789ab"
HOST = "eu1.collect.example.com"
DEVICES = 10_000
CLIENTS = Path(__file__).resolve().parents[1] / "clients"
TOPIC = "bench-websdk"
TARGET_REQUESTS_PER_S = 5_000
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def sdk_requests(count: int, *, seed: int = 5) -> list[bytes]:
    """``count`` distinct one-event JSONP requests, built as ``RequestManager.processEvent`` and
    ``RequestDispatcher.fireRequest`` build them, ``d`` encoded by the SDK's own encoder."""
    texts = []
    now = int(time.time())
    for number in range(count):
        device = f"{(seed << 40) + number % DEVICES:032x}"
        payload = {
            "type": "event",
            "evtName": "Product Viewed",
            "evtData": {"Product name": "Casio Chronograph Watch", "Category": "Accessories", "Price": 59.99},
            "id": ACCOUNT,
            "g": device,
            "s": now - 600,
            "pg": 1 + number // DEVICES,
            "af": {"lib": "web-sdk-v2.5.2", "protocol": "https"},
            "WZRK_CAMP": {},
        }
        texts.append(json.dumps(orjson.dumps(payload).decode()))
    done = subprocess.run(
        ["node", "websdk_encoder.mjs"],
        cwd=CLIENTS,
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    encoded = done.stdout.splitlines()
    assert len(encoded) == count, "the SDK's encoder did not answer every payload"
    requests = []
    for number, d in enumerate(encoded):
        device = f"{(seed << 40) + number % DEVICES:032x}"
        rn = 1 + number // DEVICES
        target = (
            f"/a?t=96&type=push&d={quote(d, safe='')}&rn={rn}&i={now}&sn={number % 7}&gc={device}&tries=1"
            f"&origin=https%3A%2F%2Fshop.example.com&useIP=false&r={now * 1000 + number}"
        )
        requests.append(
            (
                f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
                "Referer: https://shop.example.com/\r\n\r\n"
            ).encode()
        )
    return requests


async def count_events(bootstrap: str, topic: str, timeout_s: float = 120) -> int:
    """Every event envelope on ``topic``, read from the start."""
    bus = KafkaBus(bootstrap)
    await bus.start()
    total = 0
    try:
        consumer = bus.consumer([topic], group=f"bench-count-{time.time_ns()}")
        await consumer.start()
        try:
            idle_since = time.monotonic()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and time.monotonic() - idle_since < 5:
                batch = await consumer.fetch(max_records=5000, timeout_s=1.0)
                if batch:
                    idle_since = time.monotonic()
                for record in batch:
                    members = split_pack(record.value) if is_pack(record.value) else [record.value]
                    total += sum(1 for member in members if decode(member).kind == "event")
        finally:
            await consumer.close()
    finally:
        await bus.close()
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_websdk(work: Path, broker: KafkaBroker, *, duration_s: float, connections: int) -> dict[str, Any]:
    count = int(os.environ.get("BENCH_WEBSDK_REQUESTS", str(int(TARGET_REQUESTS_PER_S * 3 * duration_s))))
    log(f"building {count} Web SDK requests with the SDK's own encoder")
    requests = sdk_requests(count)
    env = {
        "TAPWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'websdk-control.db'}",
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_ACCOUNTS": ACCOUNTS,
        "TAPWIRE_EVENTS_TOPIC": TOPIC,
        "TAPWIRE_DEAD_LETTER_TOPIC": TOPIC + ".dlq",
        "TAPWIRE_LOG_LEVEL": "WARNING",
        # One load generator on one address stands for many browsers: the per-address limit is not measured.
        "TAPWIRE_SDK_REQUESTS_PER_S_PER_ADDRESS": "1000000000",
        "TAPWIRE_SDK_BURST_PER_ADDRESS": "1000000000",
        "TAPWIRE_SDK_REQUESTS_PER_S_PER_ACCOUNT": "1000000000",
        "TAPWIRE_SDK_BURST_PER_ACCOUNT": "1000000000",
    }
    warm_up = min(2000, count // 10)
    os.sync()
    log("Web SDK JSONP requests → one gateway process → Kafka")
    with gateway_processes(work, broker, env, name="gateway-websdk", count=1) as gateways:
        ports = [gateways[0].port]
        warm: LoadResult = uvloop.run(
            drive_requests(
                host="127.0.0.1",
                ports=ports,
                requests=requests[:warm_up],
                records_per_body=1,
                connections=connections,
                duration_s=duration_s,
            )
        )
        assert gateways[0].proc is not None
        pid = gateways[0].proc.pid
        cpu_before = cpu_seconds(pid)
        loadgen_before = time.process_time()
        result: LoadResult = uvloop.run(
            drive_requests(
                host="127.0.0.1",
                ports=ports,
                requests=requests[warm_up:],
                records_per_body=1,
                connections=connections,
                duration_s=duration_s,
            )
        )
        cpu_used = cpu_seconds(pid) - cpu_before
        loadgen_used = time.process_time() - loadgen_before
    answered = result.records
    stored = asyncio.run(count_events(broker.bootstrap, TOPIC))
    log(
        f"  {answered / result.elapsed_s:.0f} requests/s, p99 {result.percentile_ms(99):.1f} ms, "
        f"statuses {result.statuses}; {stored} events on the topic for {answered + warm.records} answered; "
        f"gateway CPU {cpu_used / max(1, result.requests) * 1e6:.0f} us per request, load generator "
        f"{loadgen_used / max(1, result.requests) * 1e6:.0f} us"
    )
    if result.requests >= len(requests) - warm_up:
        log("  warning: the run used every prepared request; raise BENCH_WEBSDK_REQUESTS")
    return {
        "websdk_requests_per_s": round(answered / result.elapsed_s),
        "websdk_p50_ms": round(result.percentile_ms(50), 2),
        "websdk_p99_ms": round(result.percentile_ms(99), 2),
        "websdk_errors": result.errors,
        # The gateway's own CPU per request: what a core buys, less blurred by the load on a shared machine.
        "websdk_gateway_cpu_us_per_request": round(cpu_used / max(1, result.requests) * 1e6),
        # The load generator's, on the same two cores: what it takes from the gateway.
        "websdk_loadgen_cpu_us_per_request": round(loadgen_used / max(1, result.requests) * 1e6),
        # Events on the topic that no 200 was counted for (a request cut off at the end): never negative
        # while every 200 means durable.
        "websdk_stored_minus_answered": stored - answered - warm.records,
        "websdk_connections": connections,
    }


def main() -> None:
    duration_s = float(os.environ.get("BENCH_DURATION_S", "20"))
    # Browsers with a request in flight: each waits for its answer, which waits for the broker, so the rate is
    # at most connections / latency. 32 (the upload benchmarks' figure, for requests of 100 events) capped
    # one-event requests at 32 / latency whatever the gateway's speed; a site sending 5,000 requests/s has
    # thousands of browsers open at once (docs/benchmarks.md).
    connections = int(os.environ.get("BENCH_WEBSDK_CONNECTIONS", "128"))
    work = Path(tempfile.mkdtemp(prefix="tapwire-bench-websdk-"))
    broker = KafkaBroker(kafka_home(), work / "kafka")
    broker.start()
    try:
        figures = bench_websdk(work, broker, duration_s=duration_s, connections=connections)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()

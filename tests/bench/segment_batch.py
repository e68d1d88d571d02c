"""The gateway benchmark with Segment ``/v1/batch`` payloads (100 events, gzip): ``segment_batch_events_per_s``.

Run alone for a quick look (``python -m tests.bench.segment_batch``, short with ``BENCH_DURATION_S=3``); ``make
bench`` runs it beside the CleverTap figures on the same broker.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import orjson
import uvloop

from tests.bench.gateways import gateway_processes
from tests.bench.loadgen import LoadResult, drive_requests, segment_bodies, segment_requests
from tests.credentials import CREDENTIAL_SECRET
from tests.infra.kafka_broker import KafkaBroker, kafka_home

ACCOUNT, PASSCODE = "TAP-BENCH-0001", "passcode-bench-0123456789abcdef"
WRITE_KEY = "writekey-bench-0123456789abcdef"
ACCOUNTS = f"{ACCOUNT}:{PASSCODE}:{WRITE_KEY}"
RECORDS_PER_BODY = 100


def bench_segment_gateway(
    work: Path,
    broker: KafkaBroker,
    bodies: list[bytes],
    topic: str,
    *,
    connections: int,
    duration_s: float,
    processes: int,
) -> LoadResult:
    """``processes`` gateway processes (``tapwire serve gateway``) on Kafka, driven with ready gzip bodies after a 50-body
    warm-up."""
    env = {
        "TAPWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'segment-control.db'}",
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_ACCOUNTS": ACCOUNTS,
        "TAPWIRE_EVENTS_TOPIC": topic,
        "TAPWIRE_DEAD_LETTER_TOPIC": topic + ".dlq",
        "TAPWIRE_LOG_LEVEL": "WARNING",
        "TAPWIRE_UPLOAD_CONCURRENCY": "1000",
    }
    with gateway_processes(work, broker, env, name="segment-gateway", count=processes) as gateways:
        ports = [gateway.port for gateway in gateways]
        requests = segment_requests("127.0.0.1", ports[0], WRITE_KEY, bodies)

        async def run(batch: list[bytes]) -> LoadResult:
            return await drive_requests(
                host="127.0.0.1",
                ports=ports,
                requests=batch,
                records_per_body=RECORDS_PER_BODY,
                connections=connections,
                duration_s=duration_s,
            )

        uvloop.run(run(requests[:50]))
        return uvloop.run(run(requests[50:]))


def figures(result: LoadResult) -> dict[str, float | int]:
    return {
        "segment_batch_events_per_s": round(result.records_per_s),
        "segment_batch_p50_ms": round(result.percentile_ms(50), 2),
        "segment_batch_p99_ms": round(result.percentile_ms(99), 2),
        "segment_batch_errors": result.errors,
    }


def main() -> None:
    import os

    duration_s = float(os.environ.get("BENCH_DURATION_S", "20"))
    connections = int(os.environ.get("BENCH_CONNECTIONS", "32"))
    total = int(os.environ.get("BENCH_MAX_BODIES", "20000"))
    work = Path(tempfile.mkdtemp(prefix="tapwire-bench-segment-"))
    broker = KafkaBroker(kafka_home(), work / "kafka")
    broker.start()
    try:
        bodies = segment_bodies(total, records_per_body=RECORDS_PER_BODY, users=100_000, seed=11)
        result = bench_segment_gateway(
            work,
            broker,
            bodies,
            "bench-segment",
            connections=connections,
            duration_s=duration_s,
            processes=1,
        )
        print(f"[bench] statuses {result.statuses}", file=sys.stderr)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(orjson.dumps(figures(result)).decode(), flush=True)


if __name__ == "__main__":
    main()

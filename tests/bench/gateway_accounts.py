"""One gateway process over 1, 4 and 16 accounts: ``python -m tests.bench.gateway_accounts``.

The same load as ``make bench``'s gateway part (32 keep-alive connections, distinct 100-record bodies), with
the requests spread round robin over 1, 4 and 16 accounts of one gateway process (its per-account credential
cache, upload limits and bus packs): many small accounts must not be slower than one big one. Each count runs
``BENCH_ACCOUNTS_DURATION_S`` seconds (default 10) after a warm-up; the last output line is one JSON object
with ``gateway_events_per_s_accounts_<n>``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from tests.bench.gateways import gateway_processes
from tests.bench.loadgen import drive_requests, upload_bodies, upload_requests
from tests.credentials import CREDENTIAL_SECRET
from tests.infra.kafka_broker import KafkaBroker, kafka_home

ACCOUNTS = (1, 4, 16)
CREDENTIALS = tuple(
    (f"TAP-ACCT-{n:04d}", f"passcode-accounts-{n:04d}-0123456789abcdef") for n in range(max(ACCOUNTS))
)
DURATION_S = float(os.environ.get("BENCH_ACCOUNTS_DURATION_S", "10"))
CONNECTIONS = 32
RECORDS_PER_BODY = 100


def log(message: str) -> None:
    print(f"[bench:gateway-accounts] {message}", file=sys.stderr, flush=True)


def bench() -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="tapwire-gateway-accounts-"))
    broker = KafkaBroker(kafka_home(), work / "kafka")
    broker.start()
    env = {
        "TAPWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'control.db'}",
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_ACCOUNTS": ",".join(
            f"{account}:{passcode}:writekey-accounts-{n:04d}-0123456789abcdef"
            for n, (account, passcode) in enumerate(CREDENTIALS)
        ),
        "TAPWIRE_LOG_LEVEL": "WARNING",
        "TAPWIRE_UPLOAD_CONCURRENCY": "1000",
    }
    figures: dict[str, Any] = {}
    try:
        bodies = upload_bodies(
            int(DURATION_S * 1_200) + 100, records_per_body=RECORDS_PER_BODY, users=100_000, seed=5
        )
        for accounts in ACCOUNTS:
            topic = f"accounts-{accounts}"
            topics = {"TAPWIRE_EVENTS_TOPIC": topic, "TAPWIRE_DEAD_LETTER_TOPIC": topic + ".dlq"}
            with gateway_processes(work, broker, env | topics, name=topic, count=1) as (gateway,):
                requests = upload_requests("127.0.0.1", gateway.port, CREDENTIALS[:accounts], bodies)
                os.sync()
                load = os.getloadavg()[0]
                asyncio.run(
                    run(gateway.port, requests[:100], 2.0)
                )  # warm-up: credentials cached, producer ready
                result = asyncio.run(run(gateway.port, requests[100:], DURATION_S))
            log(
                f"{accounts} account(s): {result.records_per_s:,.0f} events/s, statuses {result.statuses} (load {load:.2f})"
            )
            figures[f"gateway_events_per_s_accounts_{accounts}"] = round(result.records_per_s)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return figures


async def run(port: int, requests: list[bytes], duration_s: float) -> Any:
    return await drive_requests(
        host="127.0.0.1",
        ports=[port],
        requests=requests,
        records_per_body=RECORDS_PER_BODY,
        connections=CONNECTIONS,
        duration_s=duration_s,
    )


if __name__ == "__main__":
    print(orjson.dumps(bench()).decode(), flush=True)

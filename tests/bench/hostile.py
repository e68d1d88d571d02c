"""Hostile bodies against one gateway process, beside valid traffic: ``hostile_peak_rss_mib`` and
``hostile_valid_success_ratio``.

``--hostile`` connections (default 64, spread over 8 tenants so that each stays within the default 15 concurrent
uploads per account and every body gets in) send worst-case bodies without pause, ignoring every ``Retry-After``: gzip inflating to tiny objects up to the inflated cap, a gzip bomb past it, deep nesting, 10 MiB of
tiny objects uncompressed, and the heaviest body the limits admit (1,000 records of 190 properties each, ~195,000
JSON values, decoded, validated and published). Another tenant sends valid 100-record uploads over ``--valid``
connections at the same time. The gateway's peak resident memory is its ``VmHWM``; the valid tenant's success ratio
is its 200s over its requests.

Run alone: ``python -m tests.bench.hostile`` (``--duration-s``, ``--hostile``); ``BENCH_ONLY=hostile make bench``
runs it in ``make bench``. Its last output line is its figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from tests.bench.gateways import gateway_processes
from tests.bench.loadgen import upload_bodies
from tests.credentials import CREDENTIAL_SECRET
from tests.infra.kafka_broker import KafkaBroker, kafka_home

HOSTILE_TENANTS = 8
HOSTILE_PASSCODE = "passcode-hostile-0123456789abcdef"
VALID, VALID_PASSCODE = "TAP-VALID-0001", "passcode-valid-0123456789abcdef"
ACCOUNTS = ",".join(
    [
        f"TAP-HOSTILE-{n}:{HOSTILE_PASSCODE}:writekey-hostile-{n}-0123456789abcdef"
        for n in range(HOSTILE_TENANTS)
    ]
    + [f"{VALID}:{VALID_PASSCODE}:writekey-valid-0123456789ab"]
)
MIB = 1024 * 1024
INFLATED_CAP = 20 * MIB  # the gateway's default TAPWIRE_MAX_INFLATED_BYTES
WIRE_CAP = 10 * MIB  # and TAPWIRE_MAX_BODY_BYTES


@dataclass(frozen=True)
class HostileBody:
    name: str
    content: bytes
    gzip: bool


def hostile_bodies() -> list[HostileBody]:
    """The worst bodies a tenant can send within the byte caps."""
    tiny = b'{"d":[' + b"{}," * ((INFLATED_CAP - 64) // 3) + b"{}]}"
    bomb = b'{"d":[' + b" " * (2 * INFLATED_CAP)
    deep = b'{"d":[' + b"[" * (INFLATED_CAP - 64)
    heavy = orjson.dumps(
        {
            "d": [
                {
                    "type": "event",
                    "identity": f"h{record}",
                    "evtName": "Heavy",
                    "evtData": {f"p{record}-{key}": key for key in range(190)},
                }
                for record in range(1000)
            ]
        }
    )
    plain_tiny = b'{"d":[' + b"{}," * ((WIRE_CAP - 64) // 3) + b"{}]}"
    return [
        HostileBody("tiny objects, gzip", gzip.compress(tiny, 6), True),
        HostileBody("gzip bomb", gzip.compress(bomb, 9), True),
        HostileBody("deep nesting, gzip", gzip.compress(deep, 9), True),
        HostileBody("tiny objects, 10 MiB plain", plain_tiny, False),
        HostileBody("heaviest admitted (195k values)", gzip.compress(heavy, 6), True),
    ]


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    by_body: dict[str, Counter[int]] = field(default_factory=dict)
    errors: int = 0

    def add(self, name: str, status: int) -> None:
        self.statuses[status] += 1
        self.by_body.setdefault(name, Counter())[status] += 1


async def hostile_sender(
    url: str, bodies: list[HostileBody], offset: int, until: float, tally: Tally
) -> None:
    headers = {
        "X-CleverTap-Account-Id": f"TAP-HOSTILE-{offset % HOSTILE_TENANTS}",
        "X-CleverTap-Passcode": HOSTILE_PASSCODE,
    }
    async with httpx.AsyncClient(timeout=120) as client:
        number = offset
        while time.monotonic() < until:
            body = bodies[number % len(bodies)]
            number += 1
            extra = {"Content-Encoding": "gzip"} if body.gzip else {}
            try:
                response = await client.post(f"{url}/1/upload", headers=headers | extra, content=body.content)
                tally.add(body.name, response.status_code)
            except httpx.HTTPError:
                tally.errors += 1  # the gateway may close a connection whose body it refused unread


async def valid_sender(url: str, bodies: list[bytes], offset: int, until: float, tally: Tally) -> None:
    headers = {"X-CleverTap-Account-Id": VALID, "X-CleverTap-Passcode": VALID_PASSCODE}
    async with httpx.AsyncClient(timeout=120) as client:
        number = offset
        while time.monotonic() < until:
            body = bodies[number % len(bodies)]
            number += 1
            try:
                response = await client.post(f"{url}/1/upload", headers=headers, content=body)
                tally.add("valid", response.status_code)
            except httpx.HTTPError:
                tally.errors += 1


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (``VmHWM``) so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def attack(url: str, *, hostile: int, valid: int, duration_s: float) -> tuple[Tally, Tally]:
    bodies = hostile_bodies()
    valid_bodies = upload_bodies(400, records_per_body=100, users=10_000, seed=3)
    until = time.monotonic() + duration_s
    bad, good = Tally(), Tally()
    await asyncio.gather(
        *(hostile_sender(url, bodies, n, until, bad) for n in range(hostile)),
        *(valid_sender(url, valid_bodies, n * 50, until, good) for n in range(valid)),
    )
    return bad, good


def run(*, hostile: int, valid: int, duration_s: float) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="tapwire-hostile-"))
    broker = KafkaBroker(kafka_home(), work / "kafka")
    broker.start()
    env = {
        "TAPWIRE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'control.db'}",
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_ACCOUNTS": ACCOUNTS,
        "TAPWIRE_EVENTS_TOPIC": "hostile-events",
        "TAPWIRE_DEAD_LETTER_TOPIC": "hostile-events.dlq",
        "TAPWIRE_LOG_LEVEL": "WARNING",
    }
    try:
        with gateway_processes(work, broker, env, name="hostile-gateway", count=1) as (gateway,):
            assert gateway.proc is not None
            pid = gateway.proc.pid
            idle = rss_mib(pid)
            bad, good = asyncio.run(attack(gateway.url, hostile=hostile, valid=valid, duration_s=duration_s))
            peak = peak_rss_mib(pid)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    valid_total = sum(good.statuses.values()) + good.errors
    figures: dict[str, object] = {
        "hostile_peak_rss_mib": round(peak, 1),
        "hostile_idle_rss_mib": round(idle, 1),
        "hostile_valid_success_ratio": round(good.statuses[200] / valid_total, 4) if valid_total else 0.0,
        "hostile_valid_requests": valid_total,
        "hostile_requests": sum(bad.statuses.values()) + bad.errors,
        "hostile_connections": hostile,
    }
    print(
        f"[hostile] hostile statuses by body: { {k: dict(v) for k, v in bad.by_body.items()} }",
        file=sys.stderr,
    )
    print(
        f"[hostile] hostile transport errors: {bad.errors}; valid statuses {dict(good.statuses)}",
        file=sys.stderr,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hostile", type=int, default=64, help="concurrent hostile connections")
    parser.add_argument("--valid", type=int, default=8, help="concurrent valid connections")
    parser.add_argument("--duration-s", type=float, default=30.0)
    args = parser.parse_args()
    print(
        orjson.dumps(run(hostile=args.hostile, valid=args.valid, duration_s=args.duration_s)).decode(),
        flush=True,
    )


if __name__ == "__main__":
    main()

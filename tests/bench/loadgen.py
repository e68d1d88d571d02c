"""A lean HTTP/1.1 keep-alive load generator for upload benchmarks.

Hand-written over asyncio streams because general-purpose clients spend more CPU per request than the
server under test, and on a 2-core machine the generator's CPU is taken from the server.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from tapwire_services import generate
from tapwire_services.generate import BASE_TS


@dataclass
class LoadResult:
    requests: int = 0
    records: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def percentile_ms(self, p: float) -> float:
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s else 0.0


def upload_bodies(count: int, *, records_per_body: int, users: int, seed: int) -> list[bytes]:
    """Distinct 100-record CleverTap bodies (distinct event ids), built before the clock starts."""
    source = generate.events(users, count * records_per_body, seed)
    return [orjson.dumps({"d": batch}) for batch in generate.batches(source, records_per_body)]


def segment_bodies(count: int, *, records_per_body: int, users: int, seed: int) -> list[bytes]:
    """Distinct gzip-compressed ``/v1/batch`` bodies shaped as segment-analytics-python sends them (server-side
    tracks: a userId, no anonymousId, so no identity link per event), built before the clock starts."""
    library = {"library": {"name": "analytics-python", "version": "2.4.0"}}
    sent_at = "2026-01-31T00:00:00.000000+00:00"
    bodies = []
    source = generate.events(users, count * records_per_body, seed)
    for number, batch in enumerate(generate.batches(source, records_per_body)):
        messages = [
            {
                "integrations": {},
                "anonymousId": None,
                "properties": record["evtData"],
                "timestamp": f"2026-01-{1 + (record['ts'] - BASE_TS) // 86_400:02d}T12:00:00.000+00:00",
                "context": library,
                "userId": record["identity"],
                "type": "track",
                "event": record["evtName"],
                "messageId": str(uuid.UUID(int=(seed << 64) + number * records_per_body + i)),
            }
            for i, record in enumerate(batch)
        ]
        bodies.append(gzip.compress(orjson.dumps({"batch": messages, "sentAt": sent_at}), compresslevel=6))
    return bodies


def segment_requests(host: str, port: int, write_key: str, bodies: list[bytes]) -> list[bytes]:
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    return [
        (
            f"POST /v1/batch HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]


def _request(host: str, port: int, account: str, passcode: str, body: bytes) -> bytes:
    head = (
        f"POST /1/upload HTTP/1.1\r\nHost: {host}:{port}\r\nX-CleverTap-Account-Id: {account}\r\n"
        f"X-CleverTap-Passcode: {passcode}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def drive(
    *,
    host: str,
    ports: Sequence[int],
    account: str,
    passcode: str,
    bodies: list[bytes],
    records_per_body: int,
    connections: int,
    duration_s: float,
) -> LoadResult:
    """Send ``bodies`` round-robin over ``connections`` keep-alive connections for ``duration_s``, the
    connections spread evenly over ``ports`` (gateway processes, as a Service spreads them over replicas).

    Each body is sent at most once, so every accepted record is a distinct event.
    """
    requests = [_request(host, ports[0], account, passcode, b) for b in bodies]
    return await drive_requests(
        host=host,
        ports=ports,
        requests=requests,
        records_per_body=records_per_body,
        connections=connections,
        duration_s=duration_s,
    )


async def drive_requests(
    *,
    host: str,
    ports: Sequence[int],
    requests: list[bytes],
    records_per_body: int,
    connections: int,
    duration_s: float,
) -> LoadResult:
    """Send ready-made HTTP requests (each at most once) over ``connections`` keep-alive connections, connection
    ``i`` to ``ports[i % len(ports)]``."""
    result = LoadResult()
    next_index = 0
    deadline = time.perf_counter() + duration_s

    async def worker(port: int) -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline and next_index < len(requests):
                payload = requests[next_index]
                next_index += 1
                started = time.perf_counter()
                writer.write(payload)
                status = await _read_response(reader)
                result.latencies_s.append(time.perf_counter() - started)
                result.requests += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.records += records_per_body
                else:
                    result.errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(ports[i % len(ports)]) for i in range(connections)))
    result.elapsed_s = time.perf_counter() - started
    return result


def upload_requests(
    host: str, port: int, credentials: Sequence[tuple[str, str]], bodies: list[bytes]
) -> list[bytes]:
    """``/1/upload`` requests of ``bodies``, body ``i`` sent as account ``credentials[i % len(credentials)]``."""
    return [
        _request(host, port, *credentials[number % len(credentials)], body)
        for number, body in enumerate(bodies)
    ]

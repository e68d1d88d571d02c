"""A lean HTTP/1.1 keep-alive load generator for upload benchmarks.

Hand-written over asyncio protocols because general-purpose clients spend more CPU per request than the
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
from typing import cast

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
    ``i`` to ``ports[i % len(ports)]``, one request in flight per connection (no pipelining)."""
    loop = asyncio.get_running_loop()
    shared = _Shared(requests, records_per_body, time.perf_counter() + duration_s)
    started = time.perf_counter()
    opened = [
        await loop.create_connection(lambda: _Connection(shared), host, ports[i % len(ports)])
        for i in range(connections)
    ]
    for _transport, connection in opened:
        connection.send_next()
    await asyncio.gather(*(connection.finished for _transport, connection in opened))
    shared.result.elapsed_s = time.perf_counter() - started
    return shared.result


class _Shared:
    """What the connections of one run share: the requests not sent yet and the result."""

    def __init__(self, requests: list[bytes], records_per_body: int, deadline: float) -> None:
        self.requests = requests
        self.next_index = 0
        self.records_per_body = records_per_body
        self.deadline = deadline
        self.result = LoadResult()


class _Connection(asyncio.Protocol):
    """One keep-alive connection as a protocol: each response read from the bytes as they arrive (status line,
    ``Content-Length``), then the next request written from the same callback. Cheaper per request than a
    stream reader and a coroutine, which matters when the generator shares two cores with the server."""

    def __init__(self, shared: _Shared) -> None:
        self.shared = shared
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def send_next(self) -> None:
        shared = self.shared
        assert self.transport is not None
        if time.perf_counter() >= shared.deadline or shared.next_index >= len(shared.requests):
            self.transport.close()
            return
        payload = shared.requests[shared.next_index]
        shared.next_index += 1
        self.sent_at = time.perf_counter()
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = _content_length(bytes(buffer[:end]))
        if len(buffer) < end + 4 + length:
            return
        status = int(buffer[9:12])
        del buffer[: end + 4 + length]
        result = self.shared.result
        result.latencies_s.append(time.perf_counter() - self.sent_at)
        result.requests += 1
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == 200:
            result.records += self.shared.records_per_body
        else:
            result.errors += 1
        self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    return 0


def upload_requests(
    host: str, port: int, credentials: Sequence[tuple[str, str]], bodies: list[bytes]
) -> list[bytes]:
    """``/1/upload`` requests of ``bodies``, body ``i`` sent as account ``credentials[i % len(credentials)]``."""
    return [
        _request(host, port, *credentials[number % len(credentials)], body)
        for number, body in enumerate(bodies)
    ]

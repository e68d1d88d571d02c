"""Steady upload traffic that behaves as a well-written client: each batch is sent until a gateway acknowledges it.

Clients take the gateways in turn, as a load balancer would. A 503 or 429 is honoured (its ``Retry-After``,
which must be there) and the same batch is sent again: event ids come with the records (``evtId``), so a retry
of a batch that was in fact published is stored once. A refused connection or a connection dropped by a
gateway that died counts apart and is retried on the next gateway. Every answer is recorded with the fault in
force when the request was sent (a lost connection: when it was lost), so the figures say what each fault did
to clients.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

# A request that has not been answered in this time is a hang: every documented answer comes sooner.
HANG_S = 30.0
# Retry-After is honoured but capped so that a client keeps probing during a long fault.
MAX_PAUSE_S = 5.0


@dataclass
class Outcomes:
    """What the clients saw."""

    acked: set[str] = field(default_factory=set)
    sent_batches: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    by_fault: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    missing_retry_after: int = 0
    hangs: int = 0
    unexpected: list[str] = field(default_factory=list)

    def record(self, fault: str, outcome: str) -> None:
        self.statuses[outcome] += 1
        self.by_fault[fault][outcome] += 1

    def record_answer(self, fault: str, answer: tuple[str, str]) -> None:
        """A request made apart from the steady traffic: its status, and its ``Retry-After`` if any."""
        status, retry_after = answer
        self.record(fault, status)
        if status == "hang":
            self.hangs += 1
        if status in ("429", "503") and not retry_after.isdigit():
            self.missing_retry_after += 1

    @property
    def other_5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("5") and status != "503")


def batch(run: str, first: int, size: int) -> tuple[list[str], list[dict[str, Any]]]:
    """``size`` event records with ids ``{run}-{n}``."""
    now = int(time.time())
    ids = [f"{run}-{n}" for n in range(first, first + size)]
    records = [
        {
            "type": "event",
            "identity": f"soak-user-{n % 500}",
            "ts": now,
            "evtName": "Soak",
            "evtId": event_id,
            "evtData": {"n": n, "run": run},
        }
        for n, event_id in zip(range(first, first + size), ids, strict=True)
    ]
    return ids, records


class Traffic:
    """``clients`` concurrent senders of ``batch_size`` records, each pausing ``pause_s`` after an ack."""

    def __init__(
        self,
        outcomes: Outcomes,
        gateways: Callable[[], Sequence[str]],
        headers: dict[str, str],
        *,
        run: str,
        fault: Callable[[], str],
        clients: int = 4,
        batch_size: int = 25,
        pause_s: float = 0.05,
    ) -> None:
        self._gateways = gateways
        self._headers = headers
        self._run = run
        self._fault = fault
        self._clients = clients
        self._batch_size = batch_size
        self._pause_s = pause_s
        self._next = 0
        self._turn = 0
        self._stop = asyncio.Event()
        self.outcomes = outcomes

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> Outcomes:
        timeout = httpx.Timeout(HANG_S, connect=5.0)
        limits = httpx.Limits(max_connections=self._clients * 2, max_keepalive_connections=self._clients * 2)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            await asyncio.gather(*(self._client(client) for _ in range(self._clients)))
        return self.outcomes

    def _gateway(self) -> str:
        urls = self._gateways()
        self._turn += 1
        return urls[self._turn % len(urls)]

    async def _client(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            first, self._next = self._next, self._next + self._batch_size
            ids, records = batch(self._run, first, self._batch_size)
            self.outcomes.sent_batches += 1
            await self._send_until_acked(client, ids, {"d": records})
            await asyncio.sleep(self._pause_s)

    async def _send_until_acked(
        self, client: httpx.AsyncClient, ids: list[str], body: dict[str, Any]
    ) -> None:
        """Send until a 200; once the soak is stopping, an unacknowledged batch is given up (never counted)."""
        while True:
            fault = self._fault()
            pause = 0.2
            try:
                response = await client.post(f"{self._gateway()}/1/upload", json=body, headers=self._headers)
            except httpx.TimeoutException:
                self.outcomes.hangs += 1
                self.outcomes.record(fault, "hang")
            except httpx.TransportError as exc:
                # Counted under the fault in force when the connection failed: a request sent just before a
                # gateway is killed loses its connection to that fault, not to the one before it.
                self.outcomes.record(self._fault(), f"connection:{type(exc).__name__}")
            else:
                status = str(response.status_code)
                self.outcomes.record(fault, status)
                if response.status_code == 200:
                    answer = response.json()
                    if answer.get("unprocessed"):
                        self.outcomes.unexpected.append(f"unprocessed records: {answer['unprocessed'][:2]}")
                    self.outcomes.acked.update(ids)
                    return
                if response.status_code in (429, 503):
                    retry_after = response.headers.get("retry-after", "")
                    if not retry_after.isdigit():
                        self.outcomes.missing_retry_after += 1
                    else:
                        pause = min(float(retry_after), MAX_PAUSE_S)
                elif response.status_code < 500:
                    self.outcomes.unexpected.append(f"{status}: {response.text[:200]}")
            if self._stop.is_set():
                return
            await asyncio.sleep(pause)

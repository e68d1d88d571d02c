"""Publishing the envelopes of concurrent requests in shared packs.

A gateway process serves many requests at once, and each request's records spread over every partition, so
packing per request (``envelope_packs.pack``) gave bus records of a handful of envelopes: at 100 records per
request and 12 partitions, about 8. Every bus record costs per-record work in the Kafka client twice, when the
gateway sends it and when the loader fetches it. Here the envelopes of every request that reaches the publish
step in the same event-loop iteration are packed together and published once; each request still returns
only when every pack holding its envelopes is durable, and fails with ``BusUnavailable`` when one is not.

Nothing waits for company: the group is flushed on the next loop iteration, so a lone request is published as
soon as it would have been, and under load the groups grow by themselves. At most ``MAX_SENDING`` groups of a
topic are in flight at once (group commit): while they are, the requests that arrive form the next group, sent
as soon as one of them is confirmed. Under a stream of small requests (the Web SDK's, one event each) a group
per loop iteration held a few requests, and each group costs the same bus records, produce bookkeeping and
futures whatever its size; waiting for a confirmation lets a group gather what arrives during a broker round trip.
A group that waited is sent with what remains of its first request's ``timeout_s``, so a request still gets its
answer, or ``BusUnavailable``, within ``timeout_s`` plus one loop iteration.

Ordering is what it was per request: a group is packed in arrival order, so one request's envelopes for one user
stay in order; groups, like the concurrent requests before them, are published concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from tapwire_core.bus import Bus, BusUnavailable
from tapwire_core.envelope import Envelope
from tapwire_core.envelope_packs import pack

_Waiter = tuple[Sequence[Envelope], asyncio.Future[None]]
_Key = tuple[str, float]

MAX_SENDING: Final = 2
"""Groups of one topic (and timeout) in flight at once."""


class _Group:
    __slots__ = ("started", "waiters")

    def __init__(self, started: float) -> None:
        self.started = started
        """Loop time of the group's first request: its deadline is this plus ``timeout_s``."""
        self.waiters: list[_Waiter] = []


class CoalescingPublisher:
    """Durable publishing of envelopes to one bus for many concurrent callers. One per process and bus."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._forming: dict[_Key, _Group] = {}
        self._flush_due: set[_Key] = set()
        self._in_flight: dict[_Key, int] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self.groups = 0
        """Groups published so far (each one publish call on the bus); for tests."""

    async def publish(self, topic: str, envelopes: Sequence[Envelope], *, timeout_s: float) -> None:
        """Return once every envelope is durable on ``topic``; raise ``BusUnavailable`` otherwise.

        ``timeout_s`` bounds the wait: the group is confirmed (or fails) within ``timeout_s`` of its first
        request, give or take one loop iteration.
        """
        if not envelopes:
            return
        loop = asyncio.get_running_loop()
        key = (topic, timeout_s)
        group = self._forming.get(key)
        if group is None:
            group = self._forming[key] = _Group(loop.time())
            if self._in_flight.get(key, 0) < MAX_SENDING:
                self._schedule_flush(loop, key)
            # Else the next confirmation of this key flushes it (``_sent``).
        done: asyncio.Future[None] = loop.create_future()
        group.waiters.append((envelopes, done))
        await done

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop, key: _Key) -> None:
        if key not in self._flush_due:
            self._flush_due.add(key)
            loop.call_soon(self._flush, key)

    def _flush(self, key: _Key) -> None:
        self._flush_due.discard(key)
        group = self._forming.pop(key, None)
        if group is None:
            return
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        task = asyncio.ensure_future(self._send(key, group))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        task.add_done_callback(lambda _: self._sent(key))

    def _sent(self, key: _Key) -> None:
        self._in_flight[key] -= 1
        if key in self._forming:
            self._schedule_flush(asyncio.get_running_loop(), key)

    async def _send(self, key: _Key, forming: _Group) -> None:
        topic, timeout_s = key
        group = forming.waiters
        try:
            remaining = forming.started + timeout_s - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise BusUnavailable("no confirmation in time: the groups before this one took it all")
            partitions = await self._bus.partitions(topic)
            records = pack([envelope for envelopes, _ in group for envelope in envelopes], partitions)
            self.groups += 1
            await self._bus.publish(topic, records, timeout_s=remaining)
        except BusUnavailable as exc:
            for _, done in group:
                if not done.done():
                    # One exception object per waiter: each request raises and chains its own.
                    failure = BusUnavailable(str(exc))
                    failure.__cause__ = exc
                    done.set_exception(failure)
            return
        except asyncio.CancelledError:
            # The process is shutting down: its callers get no answer, and their clients retry.
            for _, done in group:
                done.cancel()
            raise
        except Exception as exc:
            for _, done in group:
                if not done.done():
                    done.set_exception(exc)
            return
        # A caller cancelled meanwhile (its client went away) is skipped; its records are published anyway.
        for _, done in group:
            if not done.done():
                done.set_result(None)

"""Publishing the envelopes of concurrent requests in shared packs.

A gateway process serves many requests at once, and each request's records spread over every partition, so
packing per request (``envelope_packs.pack``) gave bus records of a handful of envelopes: at 100 records per
request and 12 partitions, about 8. Every bus record costs per-record work in the Kafka client twice, when the
gateway sends it and when the loader fetches it. Here the envelopes of every request that reaches the publish
step in the same event-loop iteration are packed together and published once; each request still returns
only when every pack holding its envelopes is durable, and fails with ``BusUnavailable`` when one is not.

Nothing waits for company: the group is flushed on the next loop iteration, so a lone request is published as
soon as it would have been, and under load the groups grow by themselves. Ordering is what it was per request:
a group is packed in arrival order, so one request's envelopes for one user stay in order; groups, like the
concurrent requests before them, are published concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tapwire_core.bus import Bus, BusUnavailable
from tapwire_core.envelope import Envelope
from tapwire_core.envelope_packs import pack

_Waiter = tuple[Sequence[Envelope], asyncio.Future[None]]


class CoalescingPublisher:
    """Durable publishing of envelopes to one bus for many concurrent callers. One per process and bus."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._forming: dict[tuple[str, float], list[_Waiter]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self.groups = 0
        """Groups published so far (each one publish call on the bus); for tests."""

    async def publish(self, topic: str, envelopes: Sequence[Envelope], *, timeout_s: float) -> None:
        """Return once every envelope is durable on ``topic``; raise ``BusUnavailable`` otherwise.

        ``timeout_s`` bounds the bus's confirmation of the group, which starts at most one loop iteration
        after this call.
        """
        if not envelopes:
            return
        loop = asyncio.get_running_loop()
        key = (topic, timeout_s)
        group = self._forming.get(key)
        if group is None:
            group = self._forming[key] = []
            loop.call_soon(self._flush, key)
        done: asyncio.Future[None] = loop.create_future()
        group.append((envelopes, done))
        await done

    def _flush(self, key: tuple[str, float]) -> None:
        group = self._forming.pop(key)
        task = asyncio.ensure_future(self._send(key, group))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, key: tuple[str, float], group: list[_Waiter]) -> None:
        topic, timeout_s = key
        try:
            partitions = await self._bus.partitions(topic)
            records = pack([envelope for envelopes, _ in group for envelope in envelopes], partitions)
            self.groups += 1
            await self._bus.publish(topic, records, timeout_s=timeout_s)
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

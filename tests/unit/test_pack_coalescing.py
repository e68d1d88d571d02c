"""Concurrent requests' envelopes published in shared packs: grouping, durability per caller, failure, order."""

from __future__ import annotations

import asyncio

import pytest

from tapwire_core.bus import BusUnavailable
from tapwire_core.pack_coalescing import CoalescingPublisher
from tests.fakes import RecordingBus
from tests.unit.test_envelope_packs import envelope


async def test_requests_in_one_loop_iteration_share_packs_and_each_returns_once_durable() -> None:
    bus = RecordingBus()
    publisher = CoalescingPublisher(bus)
    requests = [[envelope(f"u{r}-{i % 3}", i) for i in range(30)] for r in range(5)]

    await asyncio.gather(*(publisher.publish("events", batch, timeout_s=1) for batch in requests))

    assert publisher.groups == 1
    records = bus.published["events"]
    assert len(records) <= bus.partition_count  # one pack per partition for the five requests together
    stored = bus.envelopes("events")  # also checks every envelope sits on its pack's partition
    assert sorted(e.event_id for e in stored) == sorted(e.event_id for batch in requests for e in batch)
    for user in {e.ids.identity for e in stored}:  # one user's envelopes keep their order
        mine = [e.client_ts for e in stored if e.ids.identity == user]
        assert mine == sorted(mine)


async def test_requests_in_later_iterations_form_groups_of_their_own() -> None:
    bus = RecordingBus()
    publisher = CoalescingPublisher(bus)
    for n in range(3):
        await publisher.publish("events", [envelope("solo", n)], timeout_s=1)
    assert publisher.groups == 3
    assert [e.event_id for e in bus.envelopes("events")] == ["solo-0", "solo-1", "solo-2"]


async def test_an_unavailable_bus_fails_every_request_of_the_group_with_its_own_error() -> None:
    bus = RecordingBus()
    bus.fail = True
    publisher = CoalescingPublisher(bus)
    outcomes = await asyncio.gather(
        *(publisher.publish("events", [envelope(f"u{r}", r)], timeout_s=1) for r in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, BusUnavailable) for outcome in outcomes)
    assert len({id(outcome) for outcome in outcomes}) == 3
    assert bus.published.get("events", []) == []

    bus.fail = False  # the bus is back: the next request is published
    await publisher.publish("events", [envelope("later", 0)], timeout_s=1)
    assert [e.event_id for e in bus.envelopes("events")] == ["later-0"]


async def test_a_request_cancelled_while_waiting_leaves_the_others_published() -> None:
    bus = RecordingBus()
    bus.stall = asyncio.Event()
    publisher = CoalescingPublisher(bus)
    gone = asyncio.create_task(publisher.publish("events", [envelope("gone", 0)], timeout_s=5))
    kept = asyncio.create_task(publisher.publish("events", [envelope("kept", 0)], timeout_s=5))
    await asyncio.sleep(0.01)  # both are in the stalled group now
    gone.cancel()
    bus.stall.set()
    await kept
    with pytest.raises(asyncio.CancelledError):
        await gone
    # The cancelled caller got no answer, so its client retries; its records went out with the group.
    assert sorted(e.event_id for e in bus.envelopes("events")) == ["gone-0", "kept-0"]


async def test_nothing_to_publish_returns_at_once() -> None:
    bus = RecordingBus()
    publisher = CoalescingPublisher(bus)
    await publisher.publish("events", [], timeout_s=1)
    assert publisher.groups == 0
    assert bus.published == {}


async def test_an_unexpected_failure_reaches_every_request_of_the_group() -> None:
    class Broken(RecordingBus):
        async def partitions(self, topic: str) -> int:
            raise RuntimeError("metadata refused")

    publisher = CoalescingPublisher(Broken())
    outcomes = await asyncio.gather(
        *(publisher.publish("events", [envelope(f"u{r}", r)], timeout_s=1) for r in range(2)),
        return_exceptions=True,
    )
    assert [type(outcome) for outcome in outcomes] == [RuntimeError, RuntimeError]


async def test_while_the_bus_confirms_two_groups_later_requests_form_one_sent_after_a_confirmation() -> None:
    bus = RecordingBus()
    bus.stall = asyncio.Event()
    publisher = CoalescingPublisher(bus)
    first = [
        asyncio.create_task(publisher.publish("events", [envelope(f"a{n}", n)], timeout_s=5)) for n in (0, 1)
    ]
    await asyncio.sleep(0.01)
    assert publisher.groups == 1
    second = asyncio.create_task(publisher.publish("events", [envelope("b", 0)], timeout_s=5))
    await asyncio.sleep(0.01)
    assert publisher.groups == 2  # MAX_SENDING groups in flight now
    later = []
    for n in range(5):  # arriving over several loop iterations, they still wait as one group
        later.append(asyncio.create_task(publisher.publish("events", [envelope(f"c{n}", n)], timeout_s=5)))
        await asyncio.sleep(0.001)
    assert publisher.groups == 2 and not any(task.done() for task in later)
    bus.stall.set()
    await asyncio.gather(*first, second, *later)
    assert publisher.groups == 3
    assert sorted(e.event_id for e in bus.envelopes("events")) == sorted(
        ["a0-0", "a1-1", "b-0", *(f"c{n}-{n}" for n in range(5))]
    )


async def test_a_group_that_waited_has_only_what_remains_of_its_timeout() -> None:
    bus = RecordingBus()
    bus.stall = asyncio.Event()  # the broker never confirms
    publisher = CoalescingPublisher(bus)
    loop = asyncio.get_running_loop()
    started = loop.time()
    busy = [
        asyncio.create_task(publisher.publish("events", [envelope(f"busy{n}", n)], timeout_s=0.3))
        for n in range(2)
    ]
    await asyncio.sleep(0.1)  # both groups in flight, a third of their timeout gone
    waiting = asyncio.create_task(publisher.publish("events", [envelope("waits", 0)], timeout_s=0.3))
    outcomes = await asyncio.gather(*busy, waiting, return_exceptions=True)
    assert all(isinstance(outcome, BusUnavailable) for outcome in outcomes)
    # It waited for the busy groups (until 0.3) and then had 0.1 left, not a timeout of its own from there.
    assert loop.time() - started < 0.5

"""One behaviour suite for every Bus: Kafka (a real broker) and the embedded SQLite log.

Each test gets a ``LogUnderTest``: it opens Bus instances on one backing log (the same broker, or the same
directory) and names a topic no other test uses. Implementation-specific guarantees (outage behaviour for
Kafka, crash safety for the embedded log) follow the shared suite.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tapwire_core.bus import (
    Bus,
    BusConsumer,
    BusUnavailable,
    Delivered,
    Record,
    TopicPartition,
    partition_for,
)
from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.bus.kafka import KafkaBus, KafkaConsumer
from tests.infra.kafka_broker import kafka_home
from tests.infra.producer_perf import run_producer_perf

TIMEOUT_S = 10.0
# First fetches wait for the consumer to join its group (Kafka); later ones only for data.
DRAIN_TIMEOUT_S = 30.0


class LogUnderTest:
    def __init__(self, kind: str, make_bus: Callable[[], Bus], topic: str) -> None:
        self.kind = kind
        self._make_bus = make_bus
        self.topic = topic
        self._open: list[Bus] = []

    async def open(self) -> Bus:
        """A started Bus on the shared log; closed at the end of the test unless closed before."""
        bus = self._make_bus()
        await bus.start()
        self._open.append(bus)
        return bus

    async def close(self, bus: Bus) -> None:
        self._open.remove(bus)
        await bus.close()

    async def close_all(self) -> None:
        while self._open:
            await self._open.pop().close()


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.integration)])
async def log(
    request: pytest.FixtureRequest, tmp_path: Path, topic_names: Callable[[str], str]
) -> AsyncIterator[LogUnderTest]:
    if request.param == "kafka":
        broker = request.getfixturevalue("kafka_broker")
        under_test = LogUnderTest("kafka", lambda: KafkaBus(broker.bootstrap), topic_names("bus"))
    else:
        directory = tmp_path / "log"
        under_test = LogUnderTest("embedded", lambda: EmbeddedBus(directory), topic_names("bus"))
    try:
        yield under_test
    finally:
        await under_test.close_all()


def group_name() -> str:
    return "g-" + uuid.uuid4().hex[:10]


@asynccontextmanager
async def consuming(bus: Bus, topic: str, group: str) -> AsyncIterator[BusConsumer]:
    consumer = bus.consumer([topic], group)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.close()


def consumer_of(bus: Bus, topic: str, group: str) -> AbstractAsyncContextManager[BusConsumer]:
    return consuming(bus, topic, group)


async def drain(consumer: BusConsumer, expected: int, timeout_s: float = DRAIN_TIMEOUT_S) -> list[Delivered]:
    """Fetch until ``expected`` records arrived (fails on timeout), then make sure no more are pending."""
    got: list[Delivered] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expected:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(got)} of {expected} records arrived within {timeout_s}s"
        got.extend(await consumer.fetch(max_records=500, timeout_s=min(1.0, remaining)))
    got.extend(await consumer.fetch(max_records=500, timeout_s=0.3))
    return got


def records(prefix: str, count: int, key: bytes | None = None) -> list[Record]:
    return [Record(key=key or f"{prefix}-{i}".encode(), value=f"{prefix}:{i}".encode()) for i in range(count)]


async def test_round_trip_keeps_key_value_and_headers(log: LogUnderTest) -> None:
    bus = await log.open()
    await bus.ensure_topic(log.topic, 3)
    sent = Record(key=b"user-1", value=b'{"a": 1}', headers=(("tapwire-kind", b"event"), ("empty", b"")))
    await bus.publish(log.topic, [sent], timeout_s=TIMEOUT_S)
    async with consumer_of(bus, log.topic, group_name()) as consumer:
        (got,) = await drain(consumer, 1)
    assert (got.key, got.value, got.headers) == (sent.key, sent.value, sent.headers)
    assert got.topic == log.topic and got.offset == 0
    assert got.timestamp_ms > 0


async def test_one_key_stays_on_one_partition_in_order(log: LogUnderTest) -> None:
    bus = await log.open()
    await bus.ensure_topic(log.topic, 4)
    keys = [f"user-{k}".encode() for k in range(8)]
    for batch in range(5):
        await bus.publish(
            log.topic,
            [Record(key=key, value=f"{key.decode()}:{batch}:{i}".encode()) for i in range(3) for key in keys],
            timeout_s=TIMEOUT_S,
        )
    async with consumer_of(bus, log.topic, group_name()) as consumer:
        got = await drain(consumer, 5 * 3 * len(keys))
    assert len(got) == 5 * 3 * len(keys)
    for key in keys:
        mine = sorted((r for r in got if r.key == key), key=lambda r: r.offset)
        assert len({r.partition for r in mine}) == 1, f"{key!r} spread over partitions"
        assert [r.value for r in mine] == [
            f"{key.decode()}:{batch}:{i}".encode() for batch in range(5) for i in range(3)
        ]
    assert len({r.partition for r in got}) > 1, "eight keys should use more than one of four partitions"
    # Producers pre-group by partition, so placement must be the documented function on every bus.
    assert await bus.partitions(log.topic) == 4
    assert all(r.partition == partition_for(r.key or b"", 4) for r in got)


async def test_group_resumes_at_committed_offset_after_reopening(log: LogUnderTest) -> None:
    bus = await log.open()
    await bus.ensure_topic(log.topic, 1)
    await bus.publish(log.topic, records("r", 10, key=b"same"), timeout_s=TIMEOUT_S)
    group = group_name()
    tp = TopicPartition(log.topic, 0)
    async with consumer_of(bus, log.topic, group) as consumer:
        first = await drain(consumer, 10)
        assert [r.offset for r in first] == list(range(10))
        await consumer.commit({tp: 6})
        assert await consumer.committed(tp) == 6
    await log.close(bus)

    reopened = await log.open()
    async with consumer_of(reopened, log.topic, group) as consumer:
        assert await consumer.committed(tp) == 6
        rest = await drain(consumer, 4)
    assert [r.offset for r in rest] == [6, 7, 8, 9]
    assert [r.value for r in rest] == [f"r:{i}".encode() for i in range(6, 10)]


async def test_uncommitted_records_are_delivered_again(log: LogUnderTest) -> None:
    bus = await log.open()
    await bus.ensure_topic(log.topic, 2)
    await bus.publish(log.topic, records("u", 6), timeout_s=TIMEOUT_S)
    group = group_name()
    async with consumer_of(bus, log.topic, group) as consumer:
        assert len(await drain(consumer, 6)) == 6
        assert await consumer.committed(TopicPartition(log.topic, 0)) is None
    async with consumer_of(bus, log.topic, group) as consumer:
        again = await drain(consumer, 6)
    assert sorted(r.value for r in again) == sorted(r.value for r in records("u", 6))


async def test_groups_are_independent(log: LogUnderTest) -> None:
    bus = await log.open()
    await bus.ensure_topic(log.topic, 1)
    await bus.publish(log.topic, records("g", 5, key=b"k"), timeout_s=TIMEOUT_S)
    tp = TopicPartition(log.topic, 0)
    first, second = group_name(), group_name()
    async with consumer_of(bus, log.topic, first) as consumer:
        assert len(await drain(consumer, 5)) == 5
        await consumer.commit({tp: 5})
    async with consumer_of(bus, log.topic, second) as consumer:
        assert await consumer.committed(tp) is None
        assert [r.offset for r in await drain(consumer, 5)] == [0, 1, 2, 3, 4]
    async with consumer_of(bus, log.topic, first) as consumer:
        assert await consumer.committed(tp) == 5
        await bus.publish(log.topic, [Record(key=b"k", value=b"late")], timeout_s=TIMEOUT_S)
        (late,) = await drain(consumer, 1)
        assert (late.offset, late.value) == (5, b"late")


async def test_pause_stops_a_partition_and_resume_restarts_it(log: LogUnderTest) -> None:
    bus = await log.open()
    await bus.ensure_topic(log.topic, 2)
    keys = [f"key-{i}".encode() for i in range(16)]
    await bus.publish(log.topic, [Record(key=k, value=b"warm-up") for k in keys], timeout_s=TIMEOUT_S)
    async with consumer_of(bus, log.topic, group_name()) as consumer:
        warm = await drain(consumer, len(keys))
        partition_of = {r.key: r.partition for r in warm}
        assert set(partition_of.values()) == {0, 1}
        paused, running = TopicPartition(log.topic, 0), TopicPartition(log.topic, 1)
        consumer.pause([paused])
        await bus.publish(log.topic, [Record(key=k, value=b"after") for k in keys], timeout_s=TIMEOUT_S)
        on_running = sum(1 for p in partition_of.values() if p == 1)
        while_paused = await drain(consumer, on_running)
        assert {r.partition for r in while_paused} == {1}
        assert len(while_paused) == on_running
        assert await consumer.fetch(max_records=100, timeout_s=0.5) == []
        consumer.resume([paused])
        resumed = await drain(consumer, len(keys) - on_running)
        assert {r.partition for r in resumed} == {0}
        assert {r.key for r in resumed} == {k for k, p in partition_of.items() if p == 0}
        assert running.partition == 1


async def test_lag_counts_uncommitted_records(log: LogUnderTest) -> None:
    bus = await log.open()
    await bus.ensure_topic(log.topic, 1)
    await bus.publish(log.topic, records("l", 10, key=b"k"), timeout_s=TIMEOUT_S)
    tp = TopicPartition(log.topic, 0)
    async with consumer_of(bus, log.topic, group_name()) as consumer:
        await drain(consumer, 10)
        assert await consumer.lag() == {tp: 10}
        await consumer.commit({tp: 4})
        assert await consumer.lag() == {tp: 6}
        await bus.publish(log.topic, records("m", 2, key=b"k"), timeout_s=TIMEOUT_S)
        assert await consumer.lag() == {tp: 8}
        await consumer.commit({tp: 12})
        assert await consumer.lag() == {tp: 0}


async def test_ensure_topic_is_idempotent(log: LogUnderTest) -> None:
    bus = await log.open()
    await bus.ensure_topic(log.topic, 3)
    await bus.ensure_topic(log.topic, 3)
    await bus.publish(log.topic, records("e", 30), timeout_s=TIMEOUT_S)
    async with consumer_of(bus, log.topic, group_name()) as consumer:
        got = await drain(consumer, 30)
    assert len(got) == 30
    assert {r.partition for r in got} == {0, 1, 2}


async def test_published_records_survive_reopening(log: LogUnderTest) -> None:
    bus = await log.open()
    await bus.ensure_topic(log.topic, 2)
    sent = records("d", 50)
    await asyncio.gather(
        *(bus.publish(log.topic, sent[i : i + 10], timeout_s=TIMEOUT_S) for i in range(0, 50, 10))
    )
    await log.close(bus)
    reopened = await log.open()
    async with consumer_of(reopened, log.topic, group_name()) as consumer:
        got = await drain(consumer, 50)
    assert sorted(r.value for r in got) == sorted(r.value for r in sent)
    assert await reopened.healthy()


# --- Kafka only ---------------------------------------------------------------------------------------------

OUTAGE_TIMEOUT_S = 3.0


@pytest.mark.integration
async def test_kafka_down_raises_bus_unavailable_in_time_then_recovers(
    kafka_broker: Any, unique_topic: str
) -> None:
    bus = KafkaBus(kafka_broker.bootstrap)
    await bus.start()
    try:
        await bus.ensure_topic(unique_topic, 2)
        await bus.publish(unique_topic, records("before", 5), timeout_s=TIMEOUT_S)
        await asyncio.to_thread(kafka_broker.stop)
        try:
            started = time.monotonic()
            with pytest.raises(BusUnavailable):
                await bus.publish(unique_topic, records("during", 5), timeout_s=OUTAGE_TIMEOUT_S)
            assert time.monotonic() - started < OUTAGE_TIMEOUT_S + 1.0
            assert not await bus.healthy()
        finally:
            await asyncio.to_thread(kafka_broker.start)
        deadline = time.monotonic() + 60
        while True:
            try:
                await bus.publish(unique_topic, records("after", 5), timeout_s=OUTAGE_TIMEOUT_S)
                break
            except BusUnavailable:
                assert time.monotonic() < deadline, "publishing did not recover after the broker returned"
        assert await bus.healthy()
        async with consumer_of(bus, unique_topic, group_name()) as consumer:
            got = await drain(consumer, 10)
        values = {r.value for r in got}
        assert {r.value for r in records("before", 5) + records("after", 5)} <= values
    finally:
        await bus.close()


@pytest.mark.integration
async def test_kafka_commit_after_a_rebalance_skips_the_partitions_taken_away(
    kafka_broker: Any, unique_topic: str
) -> None:
    """A member that read from a partition the group then gave to another member commits the rest: its
    offsets for the lost partition are the new owner's to commit (it replays them), not a failure."""
    bus = KafkaBus(kafka_broker.bootstrap)
    await bus.start()
    group = group_name()
    try:
        await bus.ensure_topic(unique_topic, 2)
        keys = [
            next(f"k{i}".encode() for i in range(99) if partition_for(f"k{i}".encode(), 2) == p)
            for p in (0, 1)
        ]
        await bus.publish(unique_topic, [Record(key=k, value=k) for k in keys], timeout_s=TIMEOUT_S)
        async with consumer_of(bus, unique_topic, group) as first:
            assert isinstance(first, KafkaConsumer)
            read = await drain(first, 2)
            offsets = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in read}
            assert len(offsets) == 2
            async with consumer_of(bus, unique_topic, group) as second:
                assert isinstance(second, KafkaConsumer)
                deadline = time.monotonic() + DRAIN_TIMEOUT_S
                while len(first.assignment()) != 1 or len(second.assignment()) != 1:
                    assert time.monotonic() < deadline, "the group did not share the partitions"
                    await asyncio.gather(first.fetch(10, 0.2), second.fetch(10, 0.2))
                (kept,) = first.assignment()
                await first.commit(offsets)
                assert await first.committed(kept) == offsets[kept]
    finally:
        await bus.close()


@pytest.mark.integration
async def test_kafka_unreachable_at_start_is_bus_unavailable(unused_tcp_port: int) -> None:
    bus = KafkaBus(f"127.0.0.1:{unused_tcp_port}")
    started = time.monotonic()
    with pytest.raises(BusUnavailable):
        await bus.publish("nowhere", records("x", 1), timeout_s=2.0)
    assert time.monotonic() - started < 3.0
    assert not await bus.healthy()
    await bus.close()


@pytest.mark.integration
def test_producer_performance_reports_positive_figures(kafka_broker: Any, unique_topic: str) -> None:
    figures = run_producer_perf(kafka_home(), kafka_broker.bootstrap, unique_topic, 50_000, 400)
    assert figures["records"] == 50_000
    for name in ("records_per_s", "mb_per_s", "avg_ms", "p99_ms"):
        assert figures[name] > 0, f"{name} = {figures[name]}"
    assert figures["p99_ms"] >= figures["p50_ms"]


# --- embedded only ------------------------------------------------------------------------------------------

_CRASHING_PUBLISHER = textwrap.dedent(
    """
    import asyncio, sys
    from tapwire_core.bus import Record
    from tapwire_core.bus.embedded import EmbeddedBus

    async def main(directory: str) -> None:
        bus = EmbeddedBus(directory)
        await bus.start()
        await bus.ensure_topic("crash", 3)

        async def writer(w: int) -> None:
            n = 0
            while True:
                batch = [Record(key=b"w%d" % w, value=b"%d:%d" % (w, n + i)) for i in range(50)]
                await bus.publish("crash", batch, timeout_s=30)
                n += 50
                sys.stdout.write("%d %d\\n" % (w, n))
                sys.stdout.flush()

        await asyncio.gather(*(writer(w) for w in range(8)))

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_embedded_publishes_confirmed_before_kill_9_survive(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASHING_PUBLISHER,
        str(directory),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    # Let it run a while (past start-up and into steady group commits), then kill it without warning.
    first = await asyncio.wait_for(process.stdout.readline(), 60)
    assert first, "the publisher printed nothing"
    await asyncio.sleep(random.uniform(0.2, 1.2))
    process.send_signal(signal.SIGKILL)
    rest = await process.stdout.read()
    await process.wait()
    confirmed: dict[int, int] = {}
    for line in [first, *rest.splitlines()]:
        writer, count = map(int, line.split())
        confirmed[writer] = max(confirmed.get(writer, 0), count)
    assert sum(confirmed.values()) >= 50

    bus = EmbeddedBus(directory)
    await bus.start()
    try:
        async with consumer_of(bus, "crash", group_name()) as consumer:
            got: list[Delivered] = []
            while batch := await consumer.fetch(max_records=10_000, timeout_s=0.2):
                got.extend(batch)
    finally:
        await bus.close()
    by_writer: dict[int, list[int]] = {}
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        writer, n = map(int, record.value.split(b":"))
        by_writer.setdefault(writer, []).append(n)
    for writer, count in confirmed.items():
        stored = by_writer.get(writer, [])
        # In order, no duplicates, no gaps; at least everything confirmed (a commit may land unconfirmed).
        assert stored == list(range(len(stored))), f"writer {writer}: out of order or duplicated"
        assert len(stored) >= count, f"writer {writer}: {count} confirmed, {len(stored)} stored"

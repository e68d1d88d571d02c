"""Embedded log specifics beyond the shared Bus contract: retention, group commit, wake-ups, bounded waits."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tapwire_core.bus import BusUnavailable, Record, TopicPartition, partition_for
from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.bus.embedded_store import LogWriter, Retention

TOPIC = "events"


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    opened = EmbeddedBus(tmp_path, retention=Retention(keep_records=10, interval_s=3600))
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


def batch(count: int, key: bytes = b"k", start: int = 0) -> list[Record]:
    return [Record(key=key, value=str(start + i).encode()) for i in range(count)]


def test_partitioning_is_stable_across_processes_and_releases() -> None:
    # Fixed values: changing the hash would move existing users to other partitions.
    assert [partition_for(k, 12) for k in (b"user-1", b"acc\x1fi:42", b"")] == [8, 3, 0]


async def test_retention_deletes_what_every_group_committed_but_keeps_the_minimum(
    bus: EmbeddedBus,
) -> None:
    await bus.ensure_topic(TOPIC, 1)
    await bus.publish(TOPIC, batch(100), timeout_s=5)
    tp = TopicPartition(TOPIC, 0)
    ahead, behind = bus.consumer([TOPIC], "ahead"), bus.consumer([TOPIC], "behind")
    await ahead.start()
    await behind.start()
    await ahead.commit({tp: 95})
    await behind.commit({tp: 40})

    await bus.run_retention()
    fresh = bus.consumer([TOPIC], "fresh")
    await fresh.start()
    first = await fresh.fetch(max_records=1000, timeout_s=1)
    assert [r.offset for r in first] == list(range(40, 100))

    await behind.commit({tp: 100})
    await bus.run_retention()
    # Everyone is at >= 95 now, but the newest ten records stay.
    assert await fresh.lag() == {tp: 10}
    assert [r.offset for r in await behind.fetch(max_records=1000, timeout_s=1)] == list(range(90, 100))
    for consumer in (ahead, behind, fresh):
        await consumer.close()


async def test_a_group_gone_for_good_stops_holding_records_back(tmp_path: Path) -> None:
    expiry = 0.5
    bus = EmbeddedBus(tmp_path, retention=Retention(keep_records=10, interval_s=3600, group_expiry_s=expiry))
    await bus.start()
    try:
        await bus.ensure_topic(TOPIC, 1)
        await bus.publish(TOPIC, batch(100), timeout_s=5)
        tp = TopicPartition(TOPIC, 0)
        gone, idle, ahead = (bus.consumer([TOPIC], name) for name in ("gone", "idle", "ahead"))
        for consumer in (gone, idle, ahead):
            await consumer.start()
        await gone.commit({tp: 20})
        await idle.commit({tp: 40})
        await ahead.commit({tp: 95})
        await gone.close()

        # Within the expiry the closed group still holds everything from offset 20.
        await bus.run_retention()
        assert await _first_kept(bus) == 20

        await asyncio.sleep(expiry * 2)
        await bus.run_retention()
        # The closed group's offsets expired; the open one, silent just as long, still holds offset 40.
        assert await _first_kept(bus) == 40
        assert await gone.committed(tp) is None
        assert await idle.committed(tp) == 40

        await idle.close()
        await asyncio.sleep(expiry * 2)
        await bus.run_retention()
        assert await _first_kept(bus) == 90  # ahead is at 95; the newest ten stay
        back = bus.consumer([TOPIC], "gone")
        await back.start()
        assert [r.offset for r in await back.fetch(max_records=1, timeout_s=1)] == [90]
        for consumer in (ahead, back):
            await consumer.close()
    finally:
        await bus.close()


async def _first_kept(bus: EmbeddedBus) -> int:
    fresh = bus.consumer([TOPIC], "probe-" + str(time.monotonic_ns()))
    await fresh.start()
    try:
        (first,) = await fresh.fetch(max_records=1, timeout_s=1)
        return first.offset
    finally:
        await fresh.close()


async def test_offsets_continue_after_retention_emptied_a_partition(tmp_path: Path) -> None:
    first = EmbeddedBus(tmp_path, retention=Retention(keep_records=0, interval_s=3600))
    await first.start()
    await first.ensure_topic(TOPIC, 1)
    await first.publish(TOPIC, batch(5), timeout_s=5)
    consumer = first.consumer([TOPIC], "g")
    await consumer.start()
    await consumer.commit({TopicPartition(TOPIC, 0): 5})
    await first.run_retention()
    await first.close()

    second = EmbeddedBus(tmp_path)
    await second.start()
    try:
        await second.publish(TOPIC, batch(1, start=5), timeout_s=5)
        reader = second.consumer([TOPIC], "other")
        await reader.start()
        (only,) = await reader.fetch(max_records=100, timeout_s=1)
        assert (only.offset, only.value) == (5, b"5")
    finally:
        await second.close()


async def test_waiting_fetch_wakes_as_soon_as_records_commit(bus: EmbeddedBus) -> None:
    await bus.ensure_topic(TOPIC, 2)
    consumer = bus.consumer([TOPIC], "g")
    await consumer.start()
    waiting = asyncio.create_task(consumer.fetch(max_records=10, timeout_s=10))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    started = time.monotonic()
    await bus.publish(TOPIC, batch(3), timeout_s=5)
    got = await waiting
    assert time.monotonic() - started < 0.5
    assert [r.value for r in got] == [b"0", b"1", b"2"]
    await consumer.close()


async def test_concurrent_publishes_share_transactions(
    bus: EmbeddedBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    transactions: list[int] = []
    original = LogWriter._write

    def counting(self: LogWriter, writes: list[Any]) -> None:
        transactions.append(len(writes))
        original(self, writes)

    monkeypatch.setattr(LogWriter, "_write", counting)
    await bus.ensure_topic(TOPIC, 4)
    transactions.clear()
    await asyncio.gather(*(bus.publish(TOPIC, batch(100, key=b"%d" % i), timeout_s=5) for i in range(64)))
    assert sum(transactions) == 64
    assert len(transactions) < 32, f"64 publishes took {len(transactions)} transactions"


async def test_publish_gives_up_within_its_bound_when_the_log_is_locked(bus: EmbeddedBus) -> None:
    await bus.ensure_topic(TOPIC, 1)
    blocker = sqlite3.connect(bus.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(BusUnavailable):
            await bus.publish(TOPIC, batch(1), timeout_s=0.5)
        assert time.monotonic() - started < 1.0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await bus.publish(TOPIC, batch(1, start=1), timeout_s=5)


async def test_closed_bus_refuses_publishes(tmp_path: Path) -> None:
    closed = EmbeddedBus(tmp_path)
    await closed.start()
    await closed.close()
    with pytest.raises(BusUnavailable):
        await closed.publish(TOPIC, batch(1), timeout_s=1)
    assert not await closed.healthy()


async def test_records_without_headers_or_with_empty_values_round_trip(bus: EmbeddedBus) -> None:
    await bus.publish(TOPIC, [Record(key=b"", value=b""), Record(key=b"k", value=b"v")], timeout_s=5)
    consumer = bus.consumer([TOPIC], "g")
    await consumer.start()
    got = await consumer.fetch(max_records=10, timeout_s=1)
    assert [(r.key, r.value, r.headers) for r in got] == [(b"", b"", ()), (b"k", b"v", ())]
    await consumer.close()


def _log_bytes(directory: Path) -> bytes:
    """Every byte of the log's files: the database, its write-ahead log and shared memory."""
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file())


async def test_records_past_the_time_bound_are_gone_from_the_files_bytes(tmp_path: Path) -> None:
    now = [1_770_000_000_000]
    week_ms = 7 * 24 * 3600 * 1000
    bus = EmbeddedBus(
        tmp_path, retention=Retention(keep_records=100_000, interval_s=3600), clock_ms=lambda: now[0]
    )
    await bus.start()
    try:
        subject = b'{"email":"erased.subject@example.com","evtName":"Viewed"}'
        # One partition: the records that stay share the subject's pages, so a deleted record's bytes would
        # linger in a page still in use unless they are overwritten.
        await bus.ensure_topic(TOPIC, 1)
        await bus.publish(TOPIC, [Record(key=b"user-1", value=subject), *batch(50)], timeout_s=5)
        # The dead-letter topic: no consumer group ever reads it.
        await bus.publish("events.dlq", [Record(key=b"user-1", value=b"dead:" + subject)], timeout_s=5)
        reader = bus.consumer([TOPIC], "loader")
        await reader.start()
        await reader.commit({TopicPartition(TOPIC, 0): 0})  # a group that read nothing
        await bus.run_retention()

        # The check can fail: within the bound the records stay, and their bytes are in the files.
        assert b"erased.subject@example.com" in _log_bytes(tmp_path)

        now[0] += week_ms - 1000
        await bus.publish(TOPIC, batch(5, key=b"user-2", start=100), timeout_s=5)
        now[0] += 2000  # the first records are now a week and a second old; the last ones a second
        await bus.run_retention()

        # While the log stays open (as a running suite keeps it), in the database and its write-ahead log.
        content = _log_bytes(tmp_path)
        assert b"erased.subject@example.com" not in content
        assert b"dead:" not in content

        fresh = bus.consumer([TOPIC, "events.dlq"], "fresh")
        await fresh.start()
        left = await fresh.fetch(max_records=1000, timeout_s=1)
        assert sorted(r.value for r in left) == sorted(str(100 + i).encode() for i in range(5))
        await reader.close()
        await fresh.close()
    finally:
        await bus.close()
    assert b"erased.subject@example.com" not in _log_bytes(tmp_path)

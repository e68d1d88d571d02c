"""The Bus for embedded mode: a durable single-machine log in one SQLite file (see ``embedded_store``).

Publishes from many concurrent requests are committed together by one writer thread (group commit); a
publish returns once its transaction is on disk. Consumers read committed records in offset order and are
woken in-process the moment new records commit. Offsets are committed durably, so a consumer in a reopened
log resumes where its group left off. Retention deletes records every group has committed past, and every
record older than its time bound whatever the groups (``Retention``); deleted records are zeroed on disk.

Embedded mode is one process: a consumer is assigned every partition of its topics, so a group should have
one live consumer. Nothing here blocks the event loop: SQLite runs on the writer and reader threads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import sqlite3
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from tapwire_core.bus.base import Bus, BusConsumer, BusUnavailable, Delivered, Record, TopicPartition
from tapwire_core.bus.embedded_store import (
    DATABASE_FILE,
    LogReader,
    LogWriter,
    Retention,
    Synchronous,
    read_committed,
    read_partitions,
    read_records,
    read_watermarks,
    wall_clock_ms,
)

T = TypeVar("T")


class EmbeddedBus(Bus):
    """The log stored under ``directory`` (created if missing).

    ``synchronous="FULL"`` (default) makes each returned publish survive power loss; ``"NORMAL"`` only a
    process crash, for faster disks-in-doubt setups. ``default_partitions`` applies to topics first seen on
    publish rather than created by ``ensure_topic``. ``clock_ms`` (wall-clock milliseconds) stamps records and
    ages them for retention.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        synchronous: Synchronous = "FULL",
        default_partitions: int = 1,
        retention: Retention | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._directory = Path(directory)
        self._clock_ms = clock_ms
        self._synchronous: Synchronous = synchronous
        self._default_partitions = default_partitions
        self._retention = retention or Retention()
        self._writer: LogWriter | None = None
        self._reader: LogReader | None = None
        self._listeners: weakref.WeakSet[_Wakeup] = weakref.WeakSet()
        self._listeners_lock = threading.Lock()
        # Groups with a consumer open, for retention (read on the writer thread): their offsets never expire.
        self._open_groups: collections.Counter[str] = collections.Counter()
        self._open_groups_lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._directory / DATABASE_FILE

    async def start(self) -> None:
        """Open (or create) the database and start the writer thread. Idempotent."""
        if self._writer is not None:
            return
        self._directory.mkdir(parents=True, exist_ok=True)
        writer = LogWriter(
            self.path,
            synchronous=self._synchronous,
            default_partitions=self._default_partitions,
            retention=self._retention,
            on_commit=self._notify,
            live_groups=self._live_groups,
            clock_ms=self._clock_ms,
        )
        await asyncio.to_thread(writer.open)
        self._writer = writer
        self._reader = LogReader(self.path, self._synchronous)

    async def close(self) -> None:
        """Commit what is queued, then stop the threads. Consumers of this bus stop working."""
        writer, self._writer = self._writer, None
        reader, self._reader = self._reader, None
        if writer is not None:
            await asyncio.to_thread(writer.close)
        if reader is not None:
            await asyncio.to_thread(reader.close)

    async def ensure_topic(self, topic: str, partitions: int) -> None:
        await _await(self._require_writer().ensure_topic(topic, partitions), None)

    async def publish(self, topic: str, records: Sequence[Record], *, timeout_s: float) -> None:
        """Return once ``records`` are committed to disk; ``BusUnavailable`` if not within ``timeout_s``."""
        if not records:
            return
        await _await(self._require_writer().publish(topic, records), timeout_s)

    async def partitions(self, topic: str) -> int:
        return self._require_writer().partition_count(topic)

    def consumer(self, topics: Sequence[str], group: str) -> BusConsumer:
        return EmbeddedConsumer(self, topics, group)

    async def healthy(self) -> bool:
        return self._writer is not None and self._writer.alive

    @property
    def retention(self) -> Retention:
        """What the log keeps, and how often it deletes what it does not (the privacy worker's bound on copies)."""
        return self._retention

    async def run_retention(self) -> None:
        """Apply retention now rather than at the next interval."""
        await _await(self._require_writer().run_retention(), None)

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            raise BusUnavailable("the embedded log is not open")
        return await asyncio.wrap_future(self._reader.submit(query))

    async def _commit(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        await _await(self._require_writer().commit(group, offsets), None)

    def _group_opened(self, group: str) -> None:
        with self._open_groups_lock:
            self._open_groups[group] += 1

    def _group_closed(self, group: str) -> None:
        with self._open_groups_lock:
            self._open_groups[group] -= 1
            if self._open_groups[group] <= 0:
                del self._open_groups[group]

    def _live_groups(self) -> frozenset[str]:
        with self._open_groups_lock:
            return frozenset(self._open_groups)

    def _require_writer(self) -> LogWriter:
        if self._writer is None:
            raise BusUnavailable("the embedded log is not open")
        return self._writer

    def _listen(self, wakeup: _Wakeup) -> None:
        with self._listeners_lock:
            self._listeners.add(wakeup)

    def _notify(self, topics: set[str]) -> None:
        """Writer thread: records of ``topics`` were committed."""
        with self._listeners_lock:
            listeners = list(self._listeners)
        for wakeup in listeners:
            if not topics.isdisjoint(wakeup.topics):
                wakeup.fire()


async def _await(future: Future[None], timeout_s: float | None) -> None:
    waiting = asyncio.wrap_future(future)
    try:
        # Shielded: a caller's timeout must not cancel the write itself, only stop waiting for it.
        await asyncio.wait_for(asyncio.shield(waiting), timeout_s)
    except TimeoutError as exc:
        raise BusUnavailable(f"embedded log did not confirm the write within {timeout_s}s") from exc


class _Wakeup:
    """Wakes a consumer's fetch, from the writer thread, when its topics get new records."""

    def __init__(self, topics: Sequence[str]) -> None:
        self.topics = frozenset(topics)
        self.event = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def fire(self) -> None:
        # A closed loop means its consumer is gone and nobody is waiting.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.event.set)


class EmbeddedConsumer(BusConsumer):
    """Reads every partition of its topics; positions start at the group's committed offsets."""

    def __init__(self, bus: EmbeddedBus, topics: Sequence[str], group: str) -> None:
        self._bus = bus
        self._topics = list(topics)
        self._group = group
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._wakeup: _Wakeup | None = None
        self._turn = itertools.count()
        self._closed = False

    async def start(self) -> None:
        self._wakeup = _Wakeup(self._topics)
        self._bus._listen(self._wakeup)
        self._bus._group_opened(self._group)
        try:
            await self._refresh_assignment()
        except BaseException:
            self._bus._group_closed(self._group)
            self._wakeup = None
            raise

    async def fetch(self, max_records: int, timeout_s: float) -> list[Delivered]:
        """Committed records after each partition's position; waits for new ones up to ``timeout_s``."""
        if self._wakeup is None or self._closed:
            raise BusUnavailable("consumer is not started")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            # Cleared before reading: a commit after this point sets it, one before is seen by the read.
            self._wakeup.event.clear()
            await self._refresh_assignment()
            records = await self._read_ready(max_records)
            if records:
                return records
            remaining = deadline - loop.time()
            if remaining <= 0 or max_records <= 0:
                return []
            try:
                await asyncio.wait_for(self._wakeup.event.wait(), remaining)
            except TimeoutError:
                return []

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if offsets:
            await self._bus._commit(self._group, dict(offsets))

    async def committed(self, tp: TopicPartition) -> int | None:
        found = await self._bus._read(lambda conn: read_committed(conn, self._group, [tp]))
        return found.get(tp)

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        self._paused.update(partitions)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        self._paused.difference_update(partitions)

    async def lag(self) -> dict[TopicPartition, int]:
        """Next offset to be written minus the committed offset (or the first stored one, if none)."""
        tps = list(self._positions)
        if not tps:
            return {}

        def query(
            conn: sqlite3.Connection,
        ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, tuple[int, int]]]:
            return read_committed(conn, self._group, tps), read_watermarks(conn, tps)

        committed, marks = await self._bus._read(query)
        return {tp: max(0, end - committed.get(tp, first)) for tp, (first, end) in marks.items()}

    async def close(self) -> None:
        if self._wakeup is not None and not self._closed:
            self._bus._group_closed(self._group)
        self._closed = True
        self._wakeup = None

    async def _refresh_assignment(self) -> None:
        """Pick up partitions of topics created since the last fetch, starting at committed offsets."""
        topics = self._topics
        group = self._group
        known = set(self._positions)

        def query(conn: sqlite3.Connection) -> dict[TopicPartition, int]:
            fresh = [tp for tp in read_partitions(conn, topics) if tp not in known]
            committed = read_committed(conn, group, fresh)
            return {tp: committed.get(tp, 0) for tp in fresh}

        for tp, position in (await self._bus._read(query)).items():
            self._positions.setdefault(tp, position)

    async def _read_ready(self, max_records: int) -> list[Delivered]:
        active = [tp for tp in self._positions if tp not in self._paused]
        if not active or max_records <= 0:
            return []
        # Start at a different partition each call so a busy partition cannot starve the others.
        start = next(self._turn) % len(active)
        order = active[start:] + active[:start]
        positions = [(tp, self._positions[tp]) for tp in order]
        records = await self._bus._read(lambda conn: read_records(conn, positions, max_records))
        for record in records:
            self._positions[record.tp] = record.offset + 1
        return records

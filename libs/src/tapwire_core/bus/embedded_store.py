"""SQLite storage of the embedded log: schema, the single writer thread, and the reader thread.

One database file in WAL mode holds every topic. ``records`` is keyed by (topic, partition, offset);
``partitions`` keeps each partition's next offset, so offsets never repeat even after retention deleted every
record of a partition; ``group_offsets`` holds committed offsets per consumer group, and ``group_activity`` when
each group last committed or had a consumer open (its offsets expire after ``Retention.group_expiry_s`` without
either, as Kafka's do after ``offsets.retention.minutes``, so a group that never comes back stops holding
records back).

Durability: ``synchronous=FULL`` by default, so a returned publish survives power loss, not only a
``kill -9`` (WAL with ``NORMAL`` survives a process crash but may lose the last commits when the machine
loses power). The fsync this costs is paid once per group commit, not once per publish: every write
(publishes, offset commits, topic creation) goes through one writer thread that commits whatever has queued
up meanwhile in one transaction.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import msgspec

from tapwire_core.bus.base import (
    BusError,
    BusUnavailable,
    Delivered,
    Record,
    TopicPartition,
    partition_for,
)

log = logging.getLogger(__name__)

Synchronous = Literal["FULL", "NORMAL"]
T = TypeVar("T")

DATABASE_FILE = "log.sqlite3"
# Bigger pages than the default 4 KiB: records (a few hundred bytes of JSON) are stored in the b-tree itself.
_PAGE_SIZE = 16384
_MAX_RECORDS_PER_TRANSACTION = 50_000
_RETENTION_DELETE_CHUNK = 20_000

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS topics (
        name TEXT PRIMARY KEY,
        partitions INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS partitions (
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        PRIMARY KEY (topic, partition)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS records (
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        key BLOB,
        value BLOB NOT NULL,
        headers BLOB,
        timestamp_ms INTEGER NOT NULL,
        PRIMARY KEY (topic, partition, offset)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS group_offsets (
        grp TEXT NOT NULL,
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        PRIMARY KEY (grp, topic, partition)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS group_activity (
        grp TEXT PRIMARY KEY,
        last_seen_ms INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

_headers_encoder = msgspec.msgpack.Encoder()
_headers_decoder = msgspec.msgpack.Decoder(list[tuple[str, bytes]])


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> bytes | None:
    return _headers_encoder.encode(list(headers)) if headers else None


def decode_headers(blob: bytes | None) -> tuple[tuple[str, bytes], ...]:
    return tuple(_headers_decoder.decode(blob)) if blob else ()


def connect(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the log's pragmas applied."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode = WAL")
    # ``synchronous`` is one of two literals, never user input; pragmas cannot take bound parameters.
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    conn.execute("PRAGMA temp_store = MEMORY")
    # Deleted records are overwritten with zeros, not only unlinked: a record past its retention (an erased
    # subject's, say) must be gone from the file's bytes, not waiting in a free page.
    conn.execute("PRAGMA secure_delete = ON")
    return conn


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# --- writes -------------------------------------------------------------------------------------------------


@dataclass
class _Publish:
    topic: str
    records: Sequence[Record]
    done: Future[None] = field(default_factory=Future)


@dataclass
class _Commit:
    group: str
    offsets: dict[TopicPartition, int]
    done: Future[None] = field(default_factory=Future)


@dataclass
class _EnsureTopic:
    topic: str
    partitions: int
    done: Future[None] = field(default_factory=Future)


_Write = _Publish | _Commit | _EnsureTopic
# A row of the ``records`` table: topic, partition, offset, key, value, headers, timestamp_ms.
_RecordRow = tuple[str, int, int, bytes, bytes, bytes | None, int]


@dataclass(frozen=True)
class Retention:
    """Delete records every group has committed past, keeping at least ``keep_records`` per partition; and
    whatever the groups and the count, every record older than ``max_age_s`` (as Kafka's ``retention.ms``
    does: the events topic's 7 days), in every topic, the dead-letter topic included.

    A group with no consumer open in this process that has not committed for ``group_expiry_s`` (Kafka's
    default offset retention, 7 days) loses its offsets and stops counting: a consumer of it starts again at
    the oldest record kept.
    """

    keep_records: int = 100_000
    interval_s: float = 30.0
    group_expiry_s: float = 7 * 24 * 3600.0
    max_age_s: float = 7 * 24 * 3600.0


class LogWriter:
    """The one thread that writes the database; every write is a ``concurrent.futures.Future``.

    ``on_commit(topics)`` runs on the writer thread after each transaction that appended records, with the
    topics it touched; it must not block.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous,
        default_partitions: int,
        retention: Retention,
        on_commit: Callable[[set[str]], None],
        live_groups: Callable[[], frozenset[str]] = frozenset,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._path = path
        self._clock_ms = clock_ms
        self._live_groups = live_groups
        self._synchronous: Synchronous = synchronous
        self._default_partitions = default_partitions
        self._retention = retention
        self._on_commit = on_commit
        self._queue: deque[_Write] = deque()
        self._retention_requests: list[Future[None]] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._failure: BaseException | None = None
        self._partitions: dict[str, int] = {}
        self._next_offsets: dict[tuple[str, int], int] = {}
        self._conn: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="tapwire-log-writer", daemon=True)

    def open(self) -> None:
        """Create the schema and load partition state (blocking; call off the event loop), then start."""
        conn = connect(self._path, self._synchronous)
        for statement in _SCHEMA:
            conn.execute(statement)
        self._partitions = dict(conn.execute("SELECT name, partitions FROM topics").fetchall())
        self._next_offsets = {
            (topic, partition): next_offset
            for topic, partition, next_offset in conn.execute(
                "SELECT topic, partition, next_offset FROM partitions"
            )
        }
        self._conn = conn
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._failure is None and not self._stopping

    def publish(self, topic: str, records: Sequence[Record]) -> Future[None]:
        return self._submit(_Publish(topic, records))

    def commit(self, group: str, offsets: dict[TopicPartition, int]) -> Future[None]:
        return self._submit(_Commit(group, offsets))

    def partition_count(self, topic: str) -> int:
        """Partitions of ``topic``; a topic not yet created will get the default count on first publish."""
        return self._partitions.get(topic, self._default_partitions)

    def ensure_topic(self, topic: str, partitions: int) -> Future[None]:
        return self._submit(_EnsureTopic(topic, partitions))

    def run_retention(self) -> Future[None]:
        """Run one retention pass soon, on the writer thread, instead of waiting for the interval."""
        done: Future[None] = Future()
        with self._wake:
            self._retention_requests.append(done)
            self._wake.notify()
        return done

    def close(self) -> None:
        """Finish what is queued, then stop (blocking)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _submit(self, write: _Write) -> Future[None]:
        with self._wake:
            if self._stopping or self._failure is not None:
                write.done.set_exception(BusUnavailable("the embedded log is closed"))
                return write.done
            self._queue.append(write)
            self._wake.notify()
        return write.done

    def _run(self) -> None:
        next_retention = time.monotonic() + self._retention.interval_s
        while True:
            with self._wake:
                while not self._queue and not self._stopping and not self._retention_requests:
                    if not self._wake.wait(timeout=max(0.0, next_retention - time.monotonic())):
                        break
                batch = self._take()
                stopping = self._stopping and not self._queue
                requests, self._retention_requests = self._retention_requests, []
            if batch:
                self._write(batch)
            if requests or time.monotonic() >= next_retention:
                self._apply_retention()
                next_retention = time.monotonic() + self._retention.interval_s
                for request in requests:
                    request.set_result(None)
            if stopping:
                return

    def _take(self) -> list[_Write]:
        batch: list[_Write] = []
        records = 0
        while self._queue and records < _MAX_RECORDS_PER_TRANSACTION:
            write = self._queue.popleft()
            batch.append(write)
            records += len(write.records) if isinstance(write, _Publish) else 1
        return batch

    def _write(self, batch: list[_Write]) -> None:
        assert self._conn is not None
        conn = self._conn
        partitions = dict(self._partitions)
        next_offsets: dict[tuple[str, int], int] = {}
        rows: list[tuple[str, int, int, bytes, bytes, bytes | None, int]] = []
        topics: set[str] = set()
        now_ms = self._clock_ms()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in batch:
                if isinstance(write, _EnsureTopic):
                    self._create_topic(conn, partitions, write.topic, write.partitions)
                elif isinstance(write, _Commit):
                    _commit_offsets(conn, write, now_ms)
                else:
                    topics.add(write.topic)
                    self._stage_records(
                        conn,
                        write,
                        partitions=partitions,
                        next_offsets=next_offsets,
                        rows=rows,
                        now_ms=now_ms,
                    )
            if rows:
                _insert_records(conn, rows, next_offsets)
            conn.execute("COMMIT")
        except Exception as exc:
            _abandon(conn, batch, exc)
            return
        self._partitions = partitions
        self._next_offsets.update(next_offsets)
        for write in batch:
            write.done.set_result(None)
        if topics:
            try:
                self._on_commit(topics)
            except Exception:  # waking consumers must never stop the writer
                log.exception("commit notification failed")

    def _stage_records(
        self,
        conn: sqlite3.Connection,
        write: _Publish,
        *,
        partitions: dict[str, int],
        next_offsets: dict[tuple[str, int], int],
        rows: list[_RecordRow],
        now_ms: int,
    ) -> None:
        """Append the rows of ``write``'s records to ``rows``, each at the next offset of its partition after the
        rows already staged in this transaction (``next_offsets``, updated); a new topic is created first."""
        count = partitions.get(write.topic)
        if count is None:
            count = self._create_topic(conn, partitions, write.topic, self._default_partitions)
        for record in write.records:
            slot = (write.topic, partition_for(record.key, count))
            offset = next_offsets.get(slot)
            if offset is None:
                offset = self._next_offsets.get(slot, 0)
            next_offsets[slot] = offset + 1
            rows.append(
                (slot[0], slot[1], offset, record.key, record.value, encode_headers(record.headers), now_ms)
            )

    @staticmethod
    def _create_topic(conn: sqlite3.Connection, partitions: dict[str, int], topic: str, count: int) -> int:
        if count < 1:
            raise BusError(f"topic {topic!r} needs at least one partition")
        conn.execute(
            "INSERT INTO topics (name, partitions) VALUES (?, ?) ON CONFLICT DO NOTHING", (topic, count)
        )
        partitions.setdefault(topic, count)
        return partitions[topic]

    def _apply_retention(self) -> None:
        """Delete every record past ``max_age_s``; expire the offsets of groups gone for good, then delete, in
        short transactions, what every remaining group of a topic committed past (keeping a minimum). When
        anything went, the write-ahead log is checkpointed and truncated, so the deleted records' old pages
        leave it too (the database file's pages are zeroed by ``secure_delete``)."""
        assert self._conn is not None
        conn = self._conn
        changes = conn.total_changes
        try:
            self._delete_aged(conn)
            self._expire_groups(conn)
            floors = conn.execute(
                "SELECT topic, partition, MIN(next_offset) FROM group_offsets GROUP BY topic, partition"
            ).fetchall()
            for topic, partition, floor in floors:
                upper = min(
                    floor, self._next_offsets.get((topic, partition), 0) - self._retention.keep_records
                )
                lowest = conn.execute(
                    "SELECT MIN(offset) FROM records WHERE topic = ? AND partition = ?", (topic, partition)
                ).fetchone()[0]
                while lowest is not None and lowest < upper:
                    chunk_end = min(upper, lowest + _RETENTION_DELETE_CHUNK)
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(
                        "DELETE FROM records WHERE topic = ? AND partition = ? AND offset < ?",
                        (topic, partition, chunk_end),
                    )
                    conn.execute("COMMIT")
                    lowest = chunk_end
            if conn.total_changes != changes:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            log.exception("embedded log retention failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _delete_aged(self, conn: sqlite3.Connection) -> None:
        """Delete, oldest first and in short transactions, every record published more than ``max_age_s`` ago.
        A partition's records are in publish order, so what goes is a prefix of its offsets."""
        cutoff_ms = self._clock_ms() - int(self._retention.max_age_s * 1000)
        for topic, partition in list(self._next_offsets):
            while True:
                oldest = conn.execute(
                    "SELECT offset, timestamp_ms FROM records WHERE topic = ? AND partition = ? "
                    "ORDER BY offset LIMIT 1",
                    (topic, partition),
                ).fetchone()
                if oldest is None or oldest[1] >= cutoff_ms:
                    break
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "DELETE FROM records WHERE topic = ? AND partition = ? AND offset < ? AND timestamp_ms < ?",
                    (topic, partition, oldest[0] + _RETENTION_DELETE_CHUNK, cutoff_ms),
                )
                conn.execute("COMMIT")

    def _expire_groups(self, conn: sqlite3.Connection) -> None:
        """Forget the offsets of every group without a consumer open here that has not committed for
        ``group_expiry_s``. Open consumers count as activity, so an idle but running group never expires."""
        now_ms = self._clock_ms()
        cutoff_ms = now_ms - int(self._retention.group_expiry_s * 1000)
        live = self._live_groups()
        conn.execute("BEGIN IMMEDIATE")
        _touch_groups(conn, live, now_ms)
        # Groups that committed before activity was recorded start their clock now.
        conn.execute(
            "INSERT INTO group_activity (grp, last_seen_ms) SELECT DISTINCT grp, ? FROM group_offsets WHERE true "
            "ON CONFLICT (grp) DO NOTHING",
            (now_ms,),
        )
        expired = [
            grp
            for (grp,) in conn.execute("SELECT grp FROM group_activity WHERE last_seen_ms < ?", (cutoff_ms,))
            if grp not in live
        ]
        for grp in expired:
            conn.execute("DELETE FROM group_offsets WHERE grp = ?", (grp,))
            conn.execute("DELETE FROM group_activity WHERE grp = ?", (grp,))
        conn.execute("COMMIT")
        for grp in expired:
            log.info("consumer group offsets expired", extra={"group": grp})


def _commit_offsets(conn: sqlite3.Connection, write: _Commit, now_ms: int) -> None:
    conn.executemany(
        "INSERT INTO group_offsets (grp, topic, partition, next_offset) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (grp, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
        [(write.group, tp.topic, tp.partition, off) for tp, off in write.offsets.items()],
    )
    _touch_groups(conn, [write.group], now_ms)


def _insert_records(
    conn: sqlite3.Connection, rows: list[_RecordRow], next_offsets: dict[tuple[str, int], int]
) -> None:
    conn.executemany(
        "INSERT INTO records (topic, partition, offset, key, value, headers, timestamp_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(
        "INSERT INTO partitions (topic, partition, next_offset) VALUES (?, ?, ?) "
        "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
        [(topic, partition, nxt) for (topic, partition), nxt in next_offsets.items()],
    )


def _abandon(conn: sqlite3.Connection, batch: list[_Write], exc: Exception) -> None:
    """Roll back a failed write transaction and fail every write of it with ``BusUnavailable``."""
    log.exception("embedded log write failed")
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed")
    failure = BusUnavailable(f"embedded log write failed: {exc!r}")
    for write in batch:
        write.done.set_exception(failure)


def _touch_groups(conn: sqlite3.Connection, groups: Iterable[str], now_ms: int) -> None:
    conn.executemany(
        "INSERT INTO group_activity (grp, last_seen_ms) VALUES (?, ?) "
        "ON CONFLICT (grp) DO UPDATE SET last_seen_ms = excluded.last_seen_ms",
        [(grp, now_ms) for grp in groups],
    )


# --- reads --------------------------------------------------------------------------------------------------


class LogReader:
    """Read-only queries, run on one dedicated thread with its own connection."""

    def __init__(self, path: Path, synchronous: Synchronous) -> None:
        self._path = path
        self._synchronous: Synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tapwire-log-reader")

    def submit(self, query: Callable[[sqlite3.Connection], T]) -> Future[T]:
        return self._executor.submit(self._call, query)

    def close(self) -> None:
        self._executor.submit(self._close_connection).result()
        self._executor.shutdown(wait=True)

    def _call(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = connect(self._path, self._synchronous)
        return query(self._conn)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def read_partitions(conn: sqlite3.Connection, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of ``topics`` that exist, in (topic, partition) order."""
    result: list[TopicPartition] = []
    for topic in topics:
        row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
        if row is not None:
            result.extend(TopicPartition(topic, p) for p in range(row[0]))
    return result


def read_records(
    conn: sqlite3.Connection, positions: Sequence[tuple[TopicPartition, int]], max_records: int
) -> list[Delivered]:
    """Up to ``max_records`` records at or after each partition's position, partitions taken in turn."""
    delivered: list[Delivered] = []
    for tp, position in positions:
        room = max_records - len(delivered)
        if room <= 0:
            break
        for offset, key, value, headers, timestamp_ms in conn.execute(
            "SELECT offset, key, value, headers, timestamp_ms FROM records "
            "WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?",
            (tp.topic, tp.partition, position, room),
        ):
            delivered.append(
                Delivered(
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=offset,
                    key=key,
                    value=value,
                    headers=decode_headers(headers),
                    timestamp_ms=timestamp_ms,
                )
            )
    return delivered


def read_committed(
    conn: sqlite3.Connection, group: str, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    result: dict[TopicPartition, int] = {}
    for tp in tps:
        row = conn.execute(
            "SELECT next_offset FROM group_offsets WHERE grp = ? AND topic = ? AND partition = ?",
            (group, tp.topic, tp.partition),
        ).fetchone()
        if row is not None:
            result[tp] = row[0]
    return result


def read_watermarks(
    conn: sqlite3.Connection, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition: (first offset still stored, next offset to be written)."""
    result: dict[TopicPartition, tuple[int, int]] = {}
    for tp in tps:
        row = conn.execute(
            "SELECT next_offset FROM partitions WHERE topic = ? AND partition = ?", (tp.topic, tp.partition)
        ).fetchone()
        end = row[0] if row is not None else 0
        first = conn.execute(
            "SELECT MIN(offset) FROM records WHERE topic = ? AND partition = ?", (tp.topic, tp.partition)
        ).fetchone()[0]
        result[tp] = (end if first is None else first, end)
    return result

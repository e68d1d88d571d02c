"""The Bus: a partitioned, durable, replayable log with consumer groups.

Two implementations honour this contract (``tests/contract/test_bus_contract.py`` runs against both):
Kafka for distributed mode and an SQLite write-ahead log for embedded mode.
"""

from __future__ import annotations

import abc
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class BusError(Exception):
    """Base class for bus failures."""


class BusUnavailable(BusError):
    """The log could not confirm a durable write (down, or slower than the caller's bound).

    Callers must treat the write as not done: the gateway answers 503 and the client retries.
    """


def partition_for(key: bytes, partitions: int) -> int:
    """Where a key lands on a topic of ``partitions`` partitions, on every Bus implementation.

    CRC-32 is stable across processes and versions (unlike Python's salted ``hash``) and runs in C, so a
    producer can group records by partition before publishing at no per-record cost worth measuring.
    """
    return zlib.crc32(key) % partitions


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    """What a producer publishes."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a consumer receives: a record plus where it lives in the log."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())
    timestamp_ms: int = 0

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class BusConsumer(abc.ABC):
    """A member of a consumer group over one or more topics.

    Offsets are committed explicitly and only by the caller; a consumer that restarts resumes at the last
    committed offset of each partition (at-least-once).
    """

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def fetch(self, max_records: int, timeout_s: float) -> list[Delivered]:
        """Return up to ``max_records`` records, waiting at most ``timeout_s`` when none are ready.

        Records of one partition come in offset order. Paused partitions are not returned.
        """

    @abc.abstractmethod
    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Durably record, per partition, the offset of the *next* record to read."""

    @abc.abstractmethod
    async def committed(self, tp: TopicPartition) -> int | None:
        """The committed next offset of ``tp`` for this group, or None when nothing was committed."""

    @abc.abstractmethod
    def pause(self, partitions: Sequence[TopicPartition]) -> None: ...

    @abc.abstractmethod
    def resume(self, partitions: Sequence[TopicPartition]) -> None: ...

    @abc.abstractmethod
    async def lag(self) -> dict[TopicPartition, int]:
        """Records not yet committed by this group, per assigned partition."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class Bus(abc.ABC):
    """Factory for publishing and consuming on one log deployment."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ensure_topic(self, topic: str, partitions: int) -> None:
        """Create ``topic`` if missing (idempotent)."""

    @abc.abstractmethod
    async def publish(self, topic: str, records: Sequence[Record], *, timeout_s: float) -> None:
        """Append ``records`` and return only once every one is durable.

        Records with the same key land on the same partition, ``partition_for(key, partitions)``, in the
        order given. Raises ``BusUnavailable``
        when durability cannot be confirmed within ``timeout_s``; then some records may or may not have been
        written, and the caller retries the whole set (consumers deduplicate on event id).
        """

    @abc.abstractmethod
    async def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has now; a key lands on ``partition_for(key, partitions)``.

        Raises ``BusUnavailable`` when the log cannot say (unknown topic, broker down).
        """

    @abc.abstractmethod
    def consumer(self, topics: Sequence[str], group: str) -> BusConsumer:
        """A new, not yet started, consumer in ``group``."""

    @abc.abstractmethod
    async def healthy(self) -> bool:
        """Whether the log currently answers."""

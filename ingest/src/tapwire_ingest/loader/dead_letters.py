"""The dead-letter path: records the loader cannot process, with why, and a breaker against bad deploys."""

from __future__ import annotations

import logging

from tapwire_core import metrics
from tapwire_core.bus import Bus, Delivered, Record

log = logging.getLogger(__name__)


class TooManyInvalidRecords(RuntimeError):
    """The breaker tripped: a long run of invalid records means a bad producer, not bad luck. Stop, alert."""


class DeadLetters:
    """Publishes invalid records to the dead-letter topic with their origin and reason in headers.

    Infrastructure failures never come here: they crash the loader and replay from the last commit.
    """

    def __init__(self, bus: Bus, topic: str, *, max_consecutive: int, timeout_s: float) -> None:
        self._bus = bus
        self._topic = topic
        self._max_consecutive = max_consecutive
        self._timeout_s = timeout_s
        self._consecutive = 0
        self._pending: list[Record] = []

    def add(self, record: Delivered, reason: str, category: str) -> None:
        self._consecutive += 1
        if self._consecutive > self._max_consecutive:
            raise TooManyInvalidRecords(
                f"{self._consecutive} invalid records in a row on {record.topic}[{record.partition}] "
                f"at offset {record.offset}; last reason: {reason}"
            )
        # The record's own headers travel along (for a pack member, its index in the pack).
        headers = (
            *record.headers,
            ("tapwire-origin-topic", record.topic.encode()),
            ("tapwire-origin-partition", str(record.partition).encode()),
            ("tapwire-origin-offset", str(record.offset).encode()),
            ("tapwire-reason", reason.encode()[:1024]),
            ("tapwire-reason-category", category.encode()),
        )
        self._pending.append(Record(key=record.key or b"", value=record.value, headers=headers))
        metrics.DEAD_LETTERS.labels(category).inc()
        log.warning(
            "dead-lettered record",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
            },
        )

    def valid(self) -> None:
        self._consecutive = 0

    async def flush(self) -> None:
        """Publish pending dead letters durably; must succeed before the batch's offsets are committed."""
        # Take the list first: records of the next batch may be added while this publish is awaited.
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            await self._bus.publish(self._topic, pending, timeout_s=self._timeout_s)
        except BaseException:
            self._pending = pending + self._pending
            raise

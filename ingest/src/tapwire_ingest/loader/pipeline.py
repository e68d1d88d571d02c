"""The loader's consume loop: fetch → decode → batch → insert → dead-letter flush → commit.

Offsets travel with the batch and are committed only after the warehouse acknowledged every row and every
dead letter is durable, so a crash at any point replays from the last commit; tables deduplicate the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import msgspec

from tapwire_core import metrics
from tapwire_core.bus import Bus, BusConsumer, Delivered, TopicPartition
from tapwire_core.control.privacy.suppression import SuppressionCheck
from tapwire_core.envelope import StoredEnvelope, decode_stored
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse, WarehouseError, WarehouseUnavailable
from tapwire_ingest.loader.dead_letters import DeadLetters
from tapwire_ingest.loader.rows import TableRows
from tapwire_ingest.loader.writer import batch_token, write_with_retry

log = logging.getLogger(__name__)

_LAG_REFRESH_S = 5.0
_SUPPRESSED = metrics.SUPPRESSED_RECORDS.labels("loader")


@dataclass
class _Batch:
    rows: TableRows = field(default_factory=TableRows)
    items: list[tuple[Delivered, StoredEnvelope]] = field(default_factory=list)
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    records: int = 0
    opened_at: float = field(default_factory=time.monotonic)

    def track(self, record: Delivered) -> None:
        key = (record.topic, record.partition)
        span = self.offsets.get(key)
        self.offsets[key] = (record.offset, record.offset) if span is None else (span[0], record.offset)
        self.records += 1


class Loader:
    """One loader instance: a consumer-group member that owns some partitions of the events topic."""

    def __init__(
        self,
        *,
        bus: Bus,
        warehouse: Warehouse,
        settings: Settings,
        group: str | None = None,
        suppressions: SuppressionCheck | None = None,
    ) -> None:
        self._bus = bus
        self._suppressions = suppressions
        self._warehouse = warehouse
        self._settings = settings
        self._group = group or settings.loader_group
        self._stop = asyncio.Event()
        self._dead_letters = DeadLetters(
            bus,
            settings.dead_letter_topic,
            max_consecutive=settings.loader_max_consecutive_invalid,
            timeout_s=settings.bus_timeout_s,
        )
        self.rows_written = 0
        # When the first record arrived: throughput figures exclude the consumer group join before it.
        self.first_record_at: float | None = None

    def stop(self) -> None:
        """Ask the loop to flush what it holds and return. Safe to call from any task."""
        self._stop.set()

    async def run(self) -> None:
        """Consume until ``stop()``. Raises on infrastructure failure (the caller restarts; nothing is lost)."""
        consumer = self._bus.consumer([self._settings.events_topic], self._group)
        await consumer.start()
        batch = _Batch()
        # At most one batch is being written while the next is fetched and decoded: the insert runs in the
        # warehouse's own thread, so overlapping it with Python-side work nearly doubles throughput. Awaiting
        # the previous write before starting the next keeps offsets committed in order.
        in_flight: asyncio.Task[None] | None = None
        next_lag_refresh = 0.0
        try:
            while not self._stop.is_set():
                if in_flight is not None and in_flight.done():
                    in_flight.result()  # surface a failed write now rather than at the next flush
                wait = max(0.0, self._settings.loader_batch_seconds - (time.monotonic() - batch.opened_at))
                room = self._settings.loader_batch_rows - batch.records
                for record in await consumer.fetch(
                    max_records=room, timeout_s=wait if batch.records else 0.5
                ):
                    self._accept(batch, record)
                if batch.records and (
                    batch.records >= self._settings.loader_batch_rows
                    or time.monotonic() - batch.opened_at >= self._settings.loader_batch_seconds
                ):
                    if in_flight is not None:
                        await in_flight
                    in_flight = asyncio.create_task(self._flush(consumer, batch), name="loader-flush")
                    batch = _Batch()
                if time.monotonic() >= next_lag_refresh:
                    await self._export_lag(consumer)
                    next_lag_refresh = time.monotonic() + _LAG_REFRESH_S
            if in_flight is not None:
                await in_flight
                in_flight = None
            if batch.records:
                await self._flush(consumer, batch)
        finally:
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()
                with contextlib.suppress(BaseException):
                    await in_flight
            with contextlib.suppress(Exception):
                await consumer.close()

    def _accept(self, batch: _Batch, record: Delivered) -> None:
        if self.first_record_at is None:
            self.first_record_at = time.monotonic()
        batch.track(record)
        try:
            envelope = decode_stored(record.value)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self._dead_letters.add(record, f"undecodable envelope: {exc}", "decode")
            return
        if not envelope.account_id or not envelope.ids.user_key():
            self._dead_letters.add(record, "envelope names no account or no user", "invalid")
            return
        if self._suppressions is not None and self._suppressions.suppressed(
            envelope.account_id, envelope.ids
        ):
            # An erased subject's record still on the bus: committed with the batch, never written.
            _SUPPRESSED.inc()
            self._dead_letters.valid()
            return
        if not bytes(envelope.properties).lstrip().startswith(b"{"):
            self._dead_letters.add(record, "envelope properties are not a JSON object", "invalid")
            return
        try:
            batch.rows.add(envelope)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            self._dead_letters.add(record, f"undecodable profile properties: {exc}", "decode")
            return
        batch.items.append((record, envelope))
        self._dead_letters.valid()

    async def _flush(self, consumer: BusConsumer, batch: _Batch) -> None:
        token = batch_token(batch.offsets)
        try:
            await write_with_retry(self._warehouse, batch.rows, token=token, stopping=self._stop.is_set)
        except WarehouseUnavailable:
            raise
        except WarehouseError as exc:
            log.error("batch insert failed, isolating bad records", extra={"error": str(exc)})
            await self._isolate(batch)
        await self._dead_letters.flush()
        await consumer.commit({TopicPartition(t, p): last + 1 for (t, p), (_, last) in batch.offsets.items()})
        metrics.LOADER_BATCH_ROWS.observe(len(batch.rows))
        self.rows_written += len(batch.rows)

    async def _isolate(self, batch: _Batch) -> None:
        """Insert record by record; a record the warehouse refuses goes to the dead-letter topic."""
        for record, envelope in batch.items:
            rows = TableRows()
            rows.add(envelope)
            try:
                await write_with_retry(
                    self._warehouse,
                    rows,
                    token=f"{record.topic}:{record.partition}:{record.offset}",
                    stopping=self._stop.is_set,
                )
            except WarehouseUnavailable:
                raise
            except WarehouseError as exc:
                self._dead_letters.add(record, f"warehouse refused record: {exc}", "insert")

    async def _export_lag(self, consumer: BusConsumer) -> None:
        try:
            lag = await consumer.lag()
        except Exception:  # lag is advisory; never stop loading over it
            log.debug("lag unavailable", exc_info=True)
            return
        for tp, value in lag.items():
            metrics.LOADER_LAG.labels(tp.topic, str(tp.partition)).set(value)


__all__ = ["Loader"]

"""The loader's consume loop: fetch → decode → batch → insert → dead-letter flush → commit.

Offsets travel with the batch and are committed only after the warehouse acknowledged every row and every
dead letter is durable, so a crash at any point replays from the last commit; tables deduplicate the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from tapwire_core import metrics
from tapwire_core.bus import Bus, BusConsumer, Delivered, TopicPartition
from tapwire_core.control.privacy.suppression import SuppressionCheck
from tapwire_core.envelope import StoredEnvelope, decode_stored
from tapwire_core.envelope_packs import decode_pack, is_pack, split_pack
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse, WarehouseError, WarehouseUnavailable
from tapwire_ingest.loader.dead_letters import DeadLetters
from tapwire_ingest.loader.event_json import json_user_keys
from tapwire_ingest.loader.rows import TableRows, UnstorableEnvelope
from tapwire_ingest.loader.writer import batch_token, write_with_retry

log = logging.getLogger(__name__)

_LAG_REFRESH_S = 5.0
# Envelopes taken per fetch (converted to bus records by the observed envelopes per record): some tens of ms
# of decoding. The loop hands control back to the event loop after each fetch, and the batch being written
# needs it between its table inserts (each runs in the warehouse's thread, the next one is started from the
# loop): one fetch of a whole batch's records kept the writer idle for its duration, then left the loop
# waiting for the writer. Counted in envelopes because a bus record holds from one to hundreds of them.
_FETCH_ENVELOPES = 8_000
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)
_SUPPRESSED = metrics.SUPPRESSED_RECORDS.labels("loader")


@dataclass
class _Batch:
    rows: TableRows = field(default_factory=TableRows)
    # Each bus record with the envelopes admitted from it, their indexes in its pack (0 when unpacked), and
    # whether the warehouse builds their rows from the pack's JSON (``TableRows.add_event_pack``). A whole
    # pack keeps its decoded list and a range: no per-envelope object beyond the envelope itself.
    items: list[tuple[Delivered, Sequence[int], Sequence[StoredEnvelope], bool]] = field(default_factory=list)
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    records: int = 0
    envelopes: int = 0
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
        # Envelopes per bus record, smoothed: bus fetches count records, batches are sized in envelopes.
        # Unknown until the first fetch, which therefore takes a single record.
        self._per_record: float | None = None
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
                fetched = await consumer.fetch(
                    max_records=self._room(batch),
                    timeout_s=wait if batch.records else 0.5,
                )
                before = batch.envelopes
                for record in fetched:
                    self._accept(batch, record)
                # A fetch served from the consumer's buffer returns without suspending: yield explicitly so
                # the batch being written starts its next insert now rather than after this batch is built.
                await asyncio.sleep(0)
                if fetched:
                    observed = max(1.0, (batch.envelopes - before) / len(fetched))
                    previous = self._per_record
                    self._per_record = observed if previous is None else 0.8 * previous + 0.2 * observed
                if batch.records and (
                    batch.envelopes >= self._settings.loader_batch_rows
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

    def _room(self, batch: _Batch) -> int:
        """How many bus records to fetch: about ``_FETCH_ENVELOPES`` envelopes, fewer when the batch ends near
        ``loader_batch_rows`` envelopes sooner."""
        if self._per_record is None:
            return 1
        room = min(self._settings.loader_batch_rows - batch.envelopes, _FETCH_ENVELOPES)
        return max(1, int(room / self._per_record))

    def _accept(self, batch: _Batch, record: Delivered) -> None:
        if self.first_record_at is None:
            self.first_record_at = time.monotonic()
        batch.track(record)
        if not is_pack(record.value):
            try:
                single = decode_stored(record.value)
            except _DECODE_ERRORS as exc:
                self._dead_letters.add(record, f"undecodable envelope: {exc}", "decode")
                return
            self._admit(batch, record, [(0, single)])
            return
        try:
            envelopes = decode_pack(record.value)
        except _DECODE_ERRORS:
            self._admit(batch, record, self._take_apart(record))
            return
        check = self._suppressions
        if check is not None and any(check.suppressed(e.account_id, e.ids) for e in envelopes):
            self._admit(batch, record, list(enumerate(envelopes)))
            return
        # The common case: a pack of plain events, which the warehouse stores from the pack's own JSON.
        user_keys = json_user_keys(record.value, envelopes)
        if user_keys is not None:
            if envelopes:
                batch.rows.add_event_pack(record.value, envelopes, user_keys)
                batch.items.append((record, range(len(envelopes)), envelopes, True))
                batch.envelopes += len(envelopes)
                self._dead_letters.valid()
            return
        # Otherwise every envelope of the pack is stored unless the rows refuse one.
        add = batch.rows.add
        for envelope in envelopes:
            try:
                add(envelope)
            except UnstorableEnvelope:
                # Start over on this pack the slow way, from the rows of the envelopes admitted before it.
                batch.rows = _rebuilt(batch)
                self._admit(batch, record, list(enumerate(envelopes)))
                return
        if envelopes:
            batch.items.append((record, range(len(envelopes)), envelopes, False))
            batch.envelopes += len(envelopes)
            self._dead_letters.valid()

    def _take_apart(self, record: Delivered) -> list[tuple[int, StoredEnvelope]]:
        """The decodable members of a pack that failed to decode as a whole; the rest are dead-lettered."""
        try:
            members = split_pack(record.value)
        except _DECODE_ERRORS as exc:
            self._dead_letters.add(record, f"undecodable envelope pack: {exc}", "decode")
            return []
        decoded: list[tuple[int, StoredEnvelope]] = []
        for index, member in enumerate(members):
            try:
                decoded.append((index, decode_stored(member)))
            except _DECODE_ERRORS as exc:
                self._dead_letters.add(
                    _member(record, index, member), f"undecodable envelope: {exc}", "decode"
                )
        return decoded

    def _admit(self, batch: _Batch, record: Delivered, envelopes: list[tuple[int, StoredEnvelope]]) -> None:
        """Add envelopes one by one, dropping suppressed ones and dead-lettering each the warehouse cannot
        take."""
        indexes: list[int] = []
        admitted: list[StoredEnvelope] = []
        check = self._suppressions
        for index, envelope in envelopes:
            if check is not None and check.suppressed(envelope.account_id, envelope.ids):
                # An erased subject's record still on the bus: committed with the batch, never written.
                _SUPPRESSED.inc()
                self._dead_letters.valid()
                continue
            try:
                batch.rows.add(envelope)
            except UnstorableEnvelope as exc:
                self._dead_letters.add(_member_of(record, index), exc.reason, exc.category)
                continue
            indexes.append(index)
            admitted.append(envelope)
            self._dead_letters.valid()
        if admitted:
            batch.items.append((record, indexes, admitted, False))
            batch.envelopes += len(admitted)

    async def _flush(self, consumer: BusConsumer, batch: _Batch) -> None:
        token = batch_token(batch.offsets)
        try:
            await write_with_retry(self._warehouse, batch.rows, token=token, stopping=self._stop.is_set)
        except WarehouseUnavailable:
            raise
        except WarehouseError as exc:
            refused: WarehouseError | None = exc
            if batch.rows.event_packs:
                refused = await self._write_built_rows(batch, token, exc)
            if refused is not None:
                log.error("batch insert failed, isolating bad records", extra={"error": str(refused)})
                await self._isolate(batch)
        await self._dead_letters.flush()
        await consumer.commit({TopicPartition(t, p): last + 1 for (t, p), (_, last) in batch.offsets.items()})
        metrics.LOADER_BATCH_ROWS.observe(len(batch.rows))
        self.rows_written += len(batch.rows)

    async def _write_built_rows(
        self, batch: _Batch, token: str, refused: WarehouseError
    ) -> WarehouseError | None:
        """After the warehouse refused a batch holding event packs, store it once more with every row built
        here: the packs' JSON may be what it refused (a key given twice, which the loader's decoder takes), and
        one insert is far cheaper than isolating record by record. None if that stored the batch, else what the
        warehouse said. The event packs are inserted first, so nothing of the refused attempt was stored and
        the same token serves."""
        log.warning(
            "warehouse refused event packs as JSON, building their rows", extra={"error": str(refused)}
        )
        rows = _rebuilt(batch, packs_as_json=False)
        try:
            await write_with_retry(self._warehouse, rows, token=token, stopping=self._stop.is_set)
        except WarehouseUnavailable:
            raise
        except WarehouseError as exc:
            return exc
        batch.rows = rows
        return None

    async def _isolate(self, batch: _Batch) -> None:
        """Find by halves what the warehouse refuses, dead-letter it and store everything else.

        A part that is refused is split in two and each half tried on its own, down to single records: one
        refused record among n costs about 2·log2(n) inserts rather than n (some 34 for a batch of 100,000).
        """
        members = [
            (record, index, envelope)
            for record, indexes, admitted, _ in batch.items
            for index, envelope in zip(indexes, admitted, strict=True)
        ]
        parts = list(reversed(_halves(members)))  # a stack: the first half is tried first
        while parts:
            part = parts.pop()
            rows = TableRows()
            for _record, _index, envelope in part:
                rows.add(envelope)
            try:
                await write_with_retry(
                    self._warehouse, rows, token=_part_token(part), stopping=self._stop.is_set
                )
            except WarehouseUnavailable:
                raise
            except WarehouseError as exc:
                if len(part) > 1:
                    parts.extend(reversed(_halves(part)))
                    continue
                ((record, index, envelope),) = part
                self._dead_letters.add(
                    _member(record, index, bytes(msgspec.json.encode(envelope))),
                    f"warehouse refused record: {exc}",
                    "insert",
                )

    async def _export_lag(self, consumer: BusConsumer) -> None:
        try:
            lag = await consumer.lag()
        except Exception:  # lag is advisory; never stop loading over it
            log.debug("lag unavailable", exc_info=True)
            return
        # Bus lag counts messages; records are estimated from the envelopes per message seen lately.
        per_message = self._per_record or 1.0
        for tp, value in lag.items():
            labels = (tp.topic, str(tp.partition))
            metrics.LOADER_LAG_MESSAGES.labels(*labels).set(value)
            metrics.LOADER_LAG.labels(*labels).set(round(value * per_message))


def _rebuilt(batch: _Batch, *, packs_as_json: bool = True) -> TableRows:
    """The batch's rows rebuilt from the envelopes admitted so far: a pack's rows are added before any of
    its members is found unstorable, and rows cannot be taken out one by one. Event packs stay JSON for the
    warehouse unless ``packs_as_json`` is false."""
    rebuilt = TableRows()
    for record, _indexes, admitted, packed in batch.items:
        if packed and packs_as_json:
            keys = [envelope.ids.user_key() for envelope in admitted]
            rebuilt.add_event_pack(record.value, admitted, keys)
            continue
        for envelope in admitted:
            rebuilt.add(envelope)
    return rebuilt


_Member = tuple[Delivered, int, StoredEnvelope]


def _halves(part: list[_Member]) -> list[list[_Member]]:
    if len(part) < 2:
        return [part] if part else []
    middle = len(part) // 2
    return [part[:middle], part[middle:]]


def _part_token(part: Sequence[_Member]) -> str:
    """A deterministic token for a run of a batch's records (the same replay splits the same way)."""
    (first, first_index, _), (last, last_index, _) = part[0], part[-1]
    start = f"{first.topic}:{first.partition}:{first.offset}:{first_index}"
    if len(part) == 1:
        return start
    return f"{start}..{last.partition}:{last.offset}:{last_index}:{len(part)}"


def _member_of(record: Delivered, index: int) -> Delivered:
    if not is_pack(record.value):
        return record
    return _member(record, index, split_pack(record.value)[index])


def _member(record: Delivered, index: int, value: bytes) -> Delivered:
    """One envelope of a pack as a record of its own, for the dead-letter topic; unpacked records stay as-is."""
    if not is_pack(record.value):
        return record
    return dataclasses.replace(
        record, value=value, headers=(*record.headers, ("tapwire-pack-index", b"%d" % index))
    )


__all__ = ["Loader"]

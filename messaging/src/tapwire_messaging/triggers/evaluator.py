"""The trigger evaluator: a consumer group of its own on the events topic, turning events into timers.

Each fetched batch is matched against the live triggers; matching events become timers (due after the
trigger's delay and abandonment window), abandonment events cancel the user's waiting timers, and only once
both are written does the batch's offset get committed. A journey's goal event ends the user's open positions
in that journey as converted. A crash replays from the last commit, and the replay
writes nothing new: a timer's key is (campaign, user, triggering event id), a cancellation is idempotent.

Only events whose (account, name) some live trigger names are decoded past their envelope head, so the cost
of an event no trigger wants is the decoding the bus record needs anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.bus import Bus, BusConsumer, Delivered, TopicPartition
from tapwire_core.clock import Clock, epoch_ms
from tapwire_core.control.store import ControlStore
from tapwire_core.envelope import StoredEnvelope, decode_properties, decode_stored
from tapwire_core.envelope_packs import decode_pack, is_pack
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.journeys.positions import JourneyPositions
from tapwire_messaging.triggers.filters import matches_all
from tapwire_messaging.triggers.live import LiveGoal, LiveTrigger, LiveTriggers, load_live
from tapwire_messaging.triggers.membership import SegmentMembership
from tapwire_messaging.triggers.people import people
from tapwire_messaging.triggers.timers import Cancellation, NewTimer, TriggerTimers

log = logging.getLogger(__name__)

FETCH_RECORDS = 1000
_FETCH_WAIT_S = 0.2
_MAX_BACKOFF_S = 10.0
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)


@dataclass
class EvaluatorStats:
    events: int = 0
    """Envelopes read (every kind, matched or not)."""
    timers: int = 0
    cancellations: int = 0
    undecodable: int = 0
    committed: int = 0
    """Envelopes of batches whose timers and offsets are written."""


@dataclass(frozen=True, slots=True)
class Conversion:
    """The user did the goal of these (journey, version) pairs at ``done_ms``."""

    account_id: str
    user_keys: tuple[str, ...]
    journeys: tuple[tuple[int, int], ...]
    done_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    timers: list[NewTimer]
    cancellations: list[Cancellation]
    segment_checks: list[tuple[LiveTrigger, NewTimer]]
    """Timers that hold only if their user is in the trigger's segment now."""
    conversions: list[Conversion]


class TriggerEvaluator:
    def __init__(
        self,
        *,
        bus: Bus,
        engine: AsyncEngine,
        store: ControlStore,
        warehouse: Warehouse | None,
        settings: Settings,
        clock: Clock,
        on_due: Callable[[], None],
    ) -> None:
        self._bus = bus
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._on_due = on_due
        self._timers = TriggerTimers(engine)
        self._positions = JourneyPositions(engine)
        self._membership = SegmentMembership(
            warehouse, store, cluster=settings.clickhouse_cluster is not None
        )
        self._live = LiveTriggers()
        self._loaded_at = 0.0
        self._stale = True
        self.stats = EvaluatorStats()

    def invalidate(self) -> None:
        """Re-read the live triggers before the next batch (a triggered campaign was created or stopped here)."""
        self._stale = True

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set. A failure (bus, control store) closes the consumer and starts a
        new one after a backoff, resuming from the last commit."""
        delay = 0.5
        while not stopping.is_set():
            consumer = self._bus.consumer([self._settings.events_topic], self._settings.trigger_group)
            try:
                await self._bus.ensure_topic(self._settings.events_topic, self._settings.topic_partitions)
                await consumer.start()
                await self._consume(consumer, stopping)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "trigger evaluation failed; resuming from the last commit", extra={"retry_in_s": delay}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
            finally:
                try:
                    await consumer.close()
                except Exception:
                    log.warning("closing the trigger consumer failed", exc_info=True)

    async def _consume(self, consumer: BusConsumer, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            records = await consumer.fetch(FETCH_RECORDS, _FETCH_WAIT_S)
            if not records:
                continue
            before = self.stats.events
            await self.handle(records)
            await consumer.commit(_next_offsets(records))
            self.stats.committed += self.stats.events - before

    async def handle(self, records: Sequence[Delivered]) -> None:
        """Match ``records`` and write their timers and cancellations; returns once they are durable. Raises
        what the control store (or, for segment checks, the warehouse) raises."""
        await self._refresh()
        evaluation = await self._as_people(self.evaluate(records))
        timers = evaluation.timers + await self._membership.admitted(evaluation.segment_checks)
        await self._timers.add(timers, evaluation.cancellations)
        for conversion in evaluation.conversions:
            await self._positions.convert(
                account_id=conversion.account_id,
                user_keys=conversion.user_keys,
                journeys=conversion.journeys,
                done_ms=conversion.done_ms,
                reason=conversion.reason,
            )
        self.stats.timers += len(timers)
        self.stats.cancellations += len(evaluation.cancellations)
        now = epoch_ms(self._clock())
        if any(timer.due_ms <= now for timer in timers):
            self._on_due()

    async def _as_people(self, evaluation: Evaluation) -> Evaluation:
        """The evaluation with each event's user key read as the person behind it (see :mod:`.people`): timers
        under the canonical key, cancellations and goals for every key of the person."""
        keys: dict[str, set[str]] = {}
        for timer in [*evaluation.timers, *(timer for _, timer in evaluation.segment_checks)]:
            keys.setdefault(timer.account_id, set()).add(timer.user_key)
        for cancellation in evaluation.cancellations:
            keys.setdefault(cancellation.account_id, set()).update(cancellation.user_keys)
        for conversion in evaluation.conversions:
            keys.setdefault(conversion.account_id, set()).update(conversion.user_keys)
        if not keys:
            return evaluation
        found = {
            account: await people(self._engine, account, account_keys)
            for account, account_keys in keys.items()
        }

        def canonical(account_id: str, key: str) -> str:
            return found[account_id][key].canonical

        def every(account_id: str, user_keys: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(sorted({k for key in user_keys for k in found[account_id][key].keys}))

        return Evaluation(
            timers=[replace(t, user_key=canonical(t.account_id, t.user_key)) for t in evaluation.timers],
            cancellations=[
                replace(c, user_keys=every(c.account_id, c.user_keys)) for c in evaluation.cancellations
            ],
            segment_checks=[
                (trigger, replace(t, user_key=canonical(t.account_id, t.user_key)))
                for trigger, t in evaluation.segment_checks
            ],
            conversions=[
                replace(c, user_keys=every(c.account_id, c.user_keys)) for c in evaluation.conversions
            ],
        )

    async def _refresh(self) -> None:
        if self._stale or time.monotonic() - self._loaded_at >= self._settings.trigger_refresh_s:
            self._stale = False
            self._live = await load_live(self._engine)
            self._loaded_at = time.monotonic()

    def evaluate(self, records: Sequence[Delivered]) -> Evaluation:
        """The timers and cancellations ``records`` make under the live triggers (no I/O)."""
        evaluation = Evaluation([], [], [], [])
        live = self._live
        if not live.starting and not live.goals:
            self.stats.events += sum(1 for _ in records)
            return evaluation
        for record in records:
            try:
                envelopes = (
                    decode_pack(record.value) if is_pack(record.value) else [decode_stored(record.value)]
                )
            except _DECODE_ERRORS:
                # The loader dead-letters what it cannot decode; here such a record can trigger nothing.
                self.stats.undecodable += 1
                continue
            self.stats.events += len(envelopes)
            for envelope in envelopes:
                if envelope.kind != "event":
                    continue
                key = (envelope.account_id, envelope.name)
                starts = live.starting.get(key)
                cancels = live.cancelling.get(key)
                goals = live.goals.get(key)
                if starts is None and cancels is None and goals is None:
                    continue
                self._match(envelope, starts or (), cancels or (), goals or (), evaluation)
        return evaluation

    def _match(
        self,
        envelope: StoredEnvelope,
        starts: Sequence[LiveTrigger],
        cancels: Sequence[LiveTrigger],
        goals: Sequence[LiveGoal],
        evaluation: Evaluation,
    ) -> None:
        try:
            properties = decode_properties(envelope.properties)
        except _DECODE_ERRORS:
            self.stats.undecodable += 1
            return
        at = envelope.received_ts
        user_key = envelope.ids.user_key()
        grace_ms = int(self._settings.trigger_grace_s * 1000)
        for trigger in starts:
            spec = trigger.spec
            if not trigger.start_ms <= at <= trigger.end_ms or not matches_all(spec.filters, properties):
                continue
            if envelope.source == "internal" and properties.get("campaign_id") == trigger.campaign_id:
                continue  # the campaign's own feedback must not trigger it again
            timer = NewTimer(
                campaign_id=trigger.campaign_id,
                account_id=trigger.account_id,
                user_key=user_key,
                firing=envelope.event_id[:64],
                event=properties,
                trigger_ms=at,
                # An abandonment check waits a little past its window for late events to be read.
                due_ms=at + spec.wait_ms + (grace_ms if spec.not_done is not None else 0),
            )
            if spec.segment() is None:
                evaluation.timers.append(timer)
            else:
                evaluation.segment_checks.append((trigger, timer))
        done = tuple(
            t.campaign_id
            for t in cancels
            if t.spec.not_done is not None and matches_all(t.spec.not_done.filters, properties)
        )
        if done:
            reason = f"did {envelope.name}"
            evaluation.cancellations.append(Cancellation(envelope.account_id, (user_key,), done, at, reason))
        reached = tuple((g.journey_id, g.version) for g in goals if matches_all(g.goal.filters, properties))
        if reached:
            conversion = Conversion(envelope.account_id, (user_key,), reached, at, f"did {envelope.name}")
            evaluation.conversions.append(conversion)


def _next_offsets(records: Sequence[Delivered]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = record.tp
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets

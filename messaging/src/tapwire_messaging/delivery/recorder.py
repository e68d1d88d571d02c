"""Recording: write outcomes to the outbox in batches, then give back send-window slots and publish feedback.

A row's outcome is written only while this sender still holds the row (``claimed_by``), so a row whose lease
ran out and was claimed elsewhere keeps the other sender's outcome. A write that fails is retried until the
database takes it: an outcome is never dropped, and slots are freed only after the write, so the send window
really bounds what a crash can leave unrecorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.messaging import consent
from tapwire_messaging.delivery.outcomes import Outcome, SenderStats
from tapwire_messaging.email_feedback.intake import FeedbackIntake, IntakeUnavailable
from tapwire_messaging.email_feedback.notices import Notice
from tapwire_messaging.feedback import FeedbackPublisher
from tapwire_messaging.outbox import Outbox

log = logging.getLogger(__name__)

MAX_BATCH = 1000
_BOUNCE_ATTEMPTS = 3
_GATHER_S = 0.05
_RETRY_S = 0.5


class Recorder:
    def __init__(
        self,
        *,
        outbox: Outbox,
        engine: AsyncEngine,
        publisher: FeedbackPublisher,
        in_flight: set[int],
        window: asyncio.Semaphore,
        stats: SenderStats,
        worker: str,
        intake: FeedbackIntake | None = None,
    ) -> None:
        self._outbox = outbox
        self._engine = engine
        self._publisher = publisher
        self._in_flight = in_flight
        self._window = window
        self._stats = stats
        self._worker = worker
        self._intake = intake

    async def run(self, outcomes: asyncio.Queue[Outcome], *, enough_slots: int) -> None:
        """Record forever, until cancelled. A batch is what arrives within 50 ms of its first outcome, cut
        short at :data:`MAX_BATCH` outcomes or once it holds ``enough_slots`` send-window slots (so that
        dispatchers do not wait long for slots while a batch gathers)."""
        while True:
            batch = [await outcomes.get()]
            slots = int(batch[0].holds_slot)
            deadline = time.monotonic() + _GATHER_S
            while len(batch) < MAX_BATCH and slots < enough_slots:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(outcomes.get(), timeout))
                except TimeoutError:
                    break
                slots += batch[-1].holds_slot
            await self.record(batch)

    async def record(self, batch: Sequence[Outcome]) -> None:
        """Write a batch of outcomes (retrying until the database takes them), then free their rows and
        send-window slots, refuse the push tokens providers disowned, publish the feedback events and record the
        bounces."""
        verdicts = [outcome.verdict for outcome in batch]
        while True:
            try:
                await self._outbox.record(verdicts, worker=self._worker)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording outcomes failed; retrying")
                await asyncio.sleep(_RETRY_S)
        by_status = self._stats.by_status
        for outcome in batch:
            verdict = outcome.verdict
            self._in_flight.discard(verdict.id)
            by_status[verdict.status] = by_status.get(verdict.status, 0) + 1
            if outcome.holds_slot:
                self._window.release()
        for outcome in batch:
            if outcome.dead_token is not None:
                # Remembered so that no later fill picks the token again.
                await consent.set_consent(
                    self._engine,
                    account_id=outcome.dead_token.account_id,
                    kind="token",
                    subject=outcome.dead_token.token,
                    channel="push",
                    state="unsubscribed",
                    source="provider",
                    now_ms=outcome.dead_token.reported_ms,
                )
        await self._publisher.publish([o.feedback for o in batch if o.feedback is not None])
        await self._record_bounces([o.bounce for o in batch if o.bounce is not None])

    async def _record_bounces(self, notices: Sequence[Notice]) -> None:
        """Record refused emails (suppressing hard-bounced addresses) and publish their events. Tried three
        times: a bounce that cannot be recorded is logged and dropped, its row keeps its verdict, and the next
        message to the address is refused again."""
        if not notices or self._intake is None:
            return
        for attempt in range(_BOUNCE_ATTEMPTS):
            try:
                await self._intake.apply(notices)
                return
            except IntakeUnavailable as exc:
                log.warning("recording bounces failed", extra={"attempt": attempt + 1, "error": str(exc)})
                await asyncio.sleep(_RETRY_S)
        log.error("bounces dropped after retries", extra={"count": len(notices)})

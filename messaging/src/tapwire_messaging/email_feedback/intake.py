"""Applying notices: find the message each names, record the bounce or complaint, suppress the address, and
publish the matching event (``Notification Bounced``, ``Notification Complained``, ``Notification Delivered``).

A report recorded before is skipped at once. Otherwise its event goes out before the record is written and
carries an id derived from the notice, so a report applied twice (a provider's retry after a failure half-way)
stores one event and one record. :meth:`FeedbackIntake.apply`
raises :class:`IntakeUnavailable` when the bus or the database cannot take the result; callers answer so that
the report comes again (SMTP 451, HTTP 503).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.email_feedback import (
    FeedbackEntry,
    SoftBouncePolicy,
    SuppressionReason,
    record_feedback,
    recorded_notices,
)
from tapwire_core.control.messaging.models import OutboxRow
from tapwire_messaging.email_feedback.notices import Notice
from tapwire_messaging.feedback import Feedback, FeedbackName, FeedbackPublisher
from tapwire_messaging.metrics import EMAIL_FEEDBACK

log = logging.getLogger(__name__)

_EVENTS: dict[str, FeedbackName] = {
    "hard_bounce": "Notification Bounced",
    "soft_bounce": "Notification Bounced",
    "block": "Notification Bounced",
    "complaint": "Notification Complained",
    "delivered": "Notification Delivered",
}
_BOUNCE_TYPES = {"hard_bounce": "hard", "soft_bounce": "soft", "block": "block"}
# The privacy worker's pseudonym prefix for an erased user's outbox rows (tapwire_privacy.stores.messaging).
_ERASED = "x:"

Suppressed = Callable[[str, str, int, SuppressionReason], None]
"""``(account id, address, when in ms, why)``: an address was just put on the suppression list."""


class IntakeUnavailable(Exception):
    """The bus or the control database did not take a notice; it must be offered again later."""


@dataclass
class IntakeResult:
    applied: int = 0
    repeated: int = 0
    unmatched: int = 0
    suppressed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Message:
    account_id: str
    campaign_id: int
    variant: str
    user_key: str
    address: str


class FeedbackIntake:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        publisher: FeedbackPublisher,
        policy: SoftBouncePolicy,
        now_ms: Callable[[], int],
        on_suppressed: Suppressed | None = None,
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._policy = policy
        self._now_ms = now_ms
        self._on_suppressed = on_suppressed

    async def apply(self, notices: Sequence[Notice]) -> IntakeResult:
        """Apply every notice (each at most once, by its id). Raises IntakeUnavailable, having applied none
        or some of them, when a store is down: offering all of them again is safe."""
        result = IntakeResult()
        try:
            messages = await self._messages({n.row_id for n in notices if n.row_id is not None})
        except SQLAlchemyError as exc:
            raise IntakeUnavailable(f"control store: {exc}") from exc
        for notice in notices:
            message = messages.get(notice.row_id) if notice.row_id is not None else None
            if message is not None and message.user_key.startswith(_ERASED):
                # The message's recipient was erased since: a report about it must not bring their data back.
                message = None
            if message is None:
                result.unmatched += 1
                EMAIL_FEEDBACK.labels(notice.source, notice.kind, "unmatched").inc()
                log.info(
                    "email report names no message of this deployment",
                    extra={"source": notice.source, "kind": notice.kind},
                )
                continue
            await self._apply_one(notice, message, result)
        return result

    async def _apply_one(self, notice: Notice, message: _Message, result: IntakeResult) -> None:
        if notice.kind != "delivered" and await self._recorded(message.account_id, notice.notice_id):
            result.repeated += 1
            EMAIL_FEEDBACK.labels(notice.source, notice.kind, "repeated").inc()
            return
        ts_ms = notice.ts_ms or self._now_ms()
        extra: dict[str, Any] = {"source": notice.source}
        if notice.kind in _BOUNCE_TYPES:
            extra["bounce_type"] = _BOUNCE_TYPES[notice.kind]
        if notice.kind != "delivered":
            extra["category"] = notice.category
        if notice.status:
            extra["status"] = notice.status
        if notice.detail:
            extra["detail"] = notice.detail[:200]
        event = Feedback(
            message.account_id,
            message.user_key,
            _EVENTS[notice.kind],
            message.campaign_id,
            message.variant,
            "email",
            ts_ms,
            extra,
            # Deliveries happen once per message; each bounce or complaint report is its own occurrence.
            occurrence="" if notice.kind == "delivered" else notice.notice_id,
        )
        if not await self._publisher.publish([event]):
            raise IntakeUnavailable("the bus did not take the event")
        if notice.kind == "delivered":
            result.applied += 1
            EMAIL_FEEDBACK.labels(notice.source, notice.kind, "applied").inc()
            return
        entry = FeedbackEntry(
            notice_id=notice.notice_id,
            address=message.address or notice.recipient or "",
            kind=notice.kind,
            source=notice.source,
            category=notice.category,
            ts_ms=ts_ms,
            user_key=message.user_key,
            campaign_id=message.campaign_id,
            status=notice.status,
            detail=notice.detail,
        )
        try:
            async with AsyncSession(self._engine) as session, session.begin():
                recorded = await record_feedback(
                    session, account_id=message.account_id, entry=entry, policy=self._policy
                )
        except SQLAlchemyError as exc:
            raise IntakeUnavailable(f"control store: {exc}") from exc
        if not recorded.new:
            result.repeated += 1
            EMAIL_FEEDBACK.labels(notice.source, notice.kind, "repeated").inc()
            return
        result.applied += 1
        EMAIL_FEEDBACK.labels(notice.source, notice.kind, "applied").inc()
        if recorded.suppressed is not None:
            result.suppressed.append(entry.address)
            log.info(
                "email address suppressed",
                extra={
                    "account_id": message.account_id,
                    "reason": recorded.suppressed,
                    "source": notice.source,
                },
            )
            if self._on_suppressed is not None:
                self._on_suppressed(message.account_id, entry.address, ts_ms, recorded.suppressed)

    async def _recorded(self, account_id: str, notice_id: str) -> bool:
        try:
            async with AsyncSession(self._engine) as session:
                return bool(await recorded_notices(session, account_id=account_id, notice_ids=[notice_id]))
        except SQLAlchemyError as exc:
            raise IntakeUnavailable(f"control store: {exc}") from exc

    async def _messages(self, row_ids: set[int]) -> dict[int, _Message]:
        """The email messages among ``row_ids`` (rows of other channels do not take email reports)."""
        if not row_ids:
            return {}
        async with self._engine.connect() as connection:
            rows = await connection.execute(
                select(
                    OutboxRow.id,
                    OutboxRow.account_id,
                    OutboxRow.campaign_id,
                    OutboxRow.variant,
                    OutboxRow.user_key,
                    OutboxRow.address,
                ).where(OutboxRow.id.in_(sorted(row_ids)), OutboxRow.channel == "email")
            )
            return {
                int(row.id): _Message(row.account_id, row.campaign_id, row.variant, row.user_key, row.address)
                for row in rows
            }

"""The notice queue (``privacy_notices``): what the customer must be told about a request, until it is delivered.

Notices are queued in the transaction that changes the request (received, extended, denied, completed), so a
notice exists exactly when the change does. The worker delivers due ones to the account's webhook and records
each attempt here; an undelivered notice is retried with backoff. A CCPA request's acknowledgement of receipt is
one such notice, and the one with a legal deadline of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.privacy.models import PrivacyAuditRow, PrivacyNoticeRow, PrivacyRequestRow
from tapwire_privacy.records import OPEN_STATUSES, RequestView, aware, iso
from tapwire_privacy.repository.audit import AuditLog
from tapwire_privacy.repository.transactions import Transactions

ACKNOWLEDGEMENT: Final = "acknowledgement"
"""The notice kind confirming receipt of a CCPA request."""


@dataclass(frozen=True)
class Notice:
    id: int
    account_id: str
    request_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int


class NoticeQueue:
    def __init__(self, transactions: Transactions, audit: AuditLog) -> None:
        self._tx = transactions
        self._audit = audit

    def queue(
        self, session: AsyncSession, row: PrivacyRequestRow, kind: str, *, extra: dict[str, Any] | None = None
    ) -> None:
        """Queue a ``kind`` notice about ``row`` in the caller's transaction, due now."""
        now = self._tx.clock()
        payload = {
            "request_id": row.id,
            "account_id": row.account_id,
            "type": row.type,
            "status": row.status,
            "due_at": aware(row.due_at).isoformat(),
            "extended_until": None if row.extended_until is None else aware(row.extended_until).isoformat(),
            **(extra or {}),
        }
        session.add(
            PrivacyNoticeRow(
                account_id=row.account_id,
                request_id=row.id,
                kind=kind,
                payload=payload,
                created_at=now,
                next_attempt_at=now,
                attempts=0,
            )
        )

    def queue_acknowledgement(self, session: AsyncSession, row: PrivacyRequestRow, by: dt.datetime) -> None:
        """Queue the acknowledgement of receipt (CCPA Regs. 7021: within 10 business days, saying how the request
        will be handled and when to expect the answer); it goes out with the next notice delivery."""
        when = {
            "received_at": iso(row.received_at),
            "acknowledge_by": iso(by),
            "verification": "awaiting the business's confirmation"
            if row.status == "referred"
            else "confirmed",
            "text": (
                f"The {row.type} request {row.id} was received on {iso(row.received_at)}. "
                + ("It will be acted on once the business confirms it. " if row.status == "referred" else "")
                + f"It will be answered by {iso(row.due_at)}; that period may be extended once, with notice and "
                "the reasons, to 90 days from receipt."
            ),
        }
        self.queue(session, row, ACKNOWLEDGEMENT, extra={"jurisdiction": row.jurisdiction, **when})
        self._audit.add(session, row, "acknowledgement_queued", detail={"acknowledge_by": iso(by)})

    async def due(self, limit: int = 100) -> list[Notice]:
        """Undelivered notices whose next attempt is due, oldest first."""
        now = self._tx.clock()
        async with self._tx.begin() as session:
            rows = await session.scalars(
                select(PrivacyNoticeRow)
                .where(PrivacyNoticeRow.delivered_at.is_(None), PrivacyNoticeRow.next_attempt_at <= now)
                .order_by(PrivacyNoticeRow.id)
                .limit(limit)
            )
            return [
                Notice(r.id, r.account_id, r.request_id, r.kind, dict(r.payload), r.attempts) for r in rows
            ]

    async def of_request(self, request_id: str) -> list[dict[str, Any]]:
        """Every notice about the request, as the API shows them."""
        async with self._tx.begin() as session:
            rows = await session.scalars(
                select(PrivacyNoticeRow)
                .where(PrivacyNoticeRow.request_id == request_id)
                .order_by(PrivacyNoticeRow.id)
            )
            return [
                {
                    "kind": r.kind,
                    "payload": dict(r.payload),
                    "delivered": r.delivered_at is not None,
                    "delivered_at": iso(r.delivered_at),
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                }
                for r in rows
            ]

    async def record_delivery(self, notice_id: int, *, error: str | None, retry_in_s: float) -> None:
        """Record one delivery attempt: delivered (``error`` None), or due again after ``retry_in_s``. Audited."""
        async with self._tx.begin() as session:
            row = await session.get(PrivacyNoticeRow, notice_id)
            if row is None:
                return
            now = self._tx.clock()
            row.attempts += 1
            if error is None:
                row.delivered_at, row.last_error, row.next_attempt_at = now, None, None
            else:
                row.last_error = error[:500]
                row.next_attempt_at = now + dt.timedelta(seconds=retry_in_s)
            session.add(
                PrivacyAuditRow(
                    request_id=row.request_id,
                    account_id=row.account_id,
                    at=now,
                    action="notice_delivered" if error is None else "notice_failed",
                    store=None,
                    detail={"kind": row.kind, "attempt": row.attempts},
                )
            )

    async def late_acknowledgements(self) -> list[RequestView]:
        """Open requests whose acknowledgement deadline passed with the acknowledgement still undelivered."""
        now = self._tx.clock()
        async with self._tx.begin() as session:
            late = select(PrivacyNoticeRow.request_id).where(
                PrivacyNoticeRow.kind == ACKNOWLEDGEMENT, PrivacyNoticeRow.delivered_at.is_(None)
            )
            rows = await session.scalars(
                select(PrivacyRequestRow).where(
                    PrivacyRequestRow.status.in_(OPEN_STATUSES),
                    PrivacyRequestRow.acknowledge_by < now,
                    PrivacyRequestRow.id.in_(late),
                )
            )
            return [RequestView.of(row) for row in rows]

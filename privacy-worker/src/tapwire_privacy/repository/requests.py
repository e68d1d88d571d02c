"""Request records (``privacy_requests``): creating them with their deadlines, reading them, and the customer's
actions on them (confirm, extend, deny, re-queue).

A record holds no personal data: the subject appears only as a salted hash, and the identifiers go to the
request's working set. Every change is audited, and the notices it owes the customer are queued, in the same
transaction as the change.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.privacy.models import PrivacyRequestRow
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, subject_hash
from tapwire_privacy.deadlines import Jurisdiction, deadlines_for, extended_due_at
from tapwire_privacy.records import (
    OPEN_STATUSES,
    WORKABLE_STATUSES,
    Channel,
    RequestType,
    RequestView,
    ScopeKind,
    Status,
    aware,
)
from tapwire_privacy.repository.audit import AuditLog
from tapwire_privacy.repository.notices import NoticeQueue
from tapwire_privacy.repository.transactions import Transactions
from tapwire_privacy.repository.working_sets import WorkingSets


class RequestNotFound(LookupError):
    """No request with this id in this account."""


class RequestConflict(ValueError):
    """The request is not in a state that allows this action."""


async def request_row(
    session: AsyncSession, request_id: str, account_id: str | None, *, lock: bool = False
) -> PrivacyRequestRow:
    """The request's row (of ``account_id`` when given; locked for update when ``lock``). Raises RequestNotFound."""
    row = await session.get(PrivacyRequestRow, request_id, with_for_update=lock or None)
    if row is None or (account_id is not None and row.account_id != account_id):
        raise RequestNotFound(request_id)
    return row


class RequestRecords:
    def __init__(
        self,
        transactions: Transactions,
        *,
        audit: AuditLog,
        notices: NoticeQueue,
        working_sets: WorkingSets,
        retention: dt.timedelta,
    ) -> None:
        self._tx = transactions
        self._audit = audit
        self._notices = notices
        self._working_sets = working_sets
        self._retention = retention

    # Creating and reading.

    async def create(
        self,
        *,
        account_id: str,
        type: RequestType,
        scope: ScopeKind,
        channel: Channel,
        jurisdiction: Jurisdiction,
        keys: Sequence[str],
        payload: dict[str, Any] | None = None,
        status: Status = "pending",
        progress: dict[str, Any] | None = None,
    ) -> RequestView:
        """Record a new request; a subject request keeps its identifiers in the working set only. ``progress``:
        where the request starts (an offboarding's first phase)."""
        created = await self.create_many(
            account_id=account_id,
            type=type,
            scope=scope,
            channel=channel,
            jurisdiction=jurisdiction,
            subjects=[keys],
            payload=payload,
            status=status,
            progress=progress,
        )
        return created[0]

    async def create_many(
        self,
        *,
        account_id: str,
        type: RequestType,
        scope: ScopeKind,
        channel: Channel,
        jurisdiction: Jurisdiction,
        subjects: Sequence[Sequence[str]],
        payload: dict[str, Any] | None = None,
        status: Status = "pending",
        progress: dict[str, Any] | None = None,
    ) -> list[RequestView]:
        """Record one request per entry of ``subjects`` (each a subject's keys) in one transaction: all or none
        are recorded, and they fall due together, so the worker can serve them with one pass."""
        now = self._tx.clock()
        deadlines = deadlines_for(jurisdiction, now)
        async with self._tx.begin() as session:
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            rows = [
                PrivacyRequestRow(
                    id=secrets.token_hex(16),
                    account_id=account_id,
                    type=type,
                    scope=scope,
                    status=status,
                    channel=channel,
                    jurisdiction=jurisdiction,
                    subject_hash=subject_hash(salt, account_id, keys) if scope == "subject" else None,
                    received_at=now,
                    acknowledge_by=deadlines.acknowledge_by,
                    due_at=deadlines.due_at,
                    extension_notice_by=deadlines.extension_notice_by,
                    progress=copy.deepcopy(progress or {}),
                    next_run_at=now if status == "pending" else None,
                    attempts=0,
                    retain_until=now + self._retention,
                    confirmed_at=now if status == "pending" else None,
                )
                for keys in subjects
            ]
            session.add_all(rows)
            await session.flush()
            for row, keys in zip(rows, subjects, strict=True):
                if scope == "subject":
                    self._working_sets.add(session, row.id, keys, payload)
                self._audit.add(
                    session, row, "received", detail={"channel": channel, "identifiers": len(keys)}
                )
                if status == "referred":
                    self._notices.queue(session, row, "direct_request_received")
                if deadlines.acknowledge_by is not None and scope == "subject":
                    self._notices.queue_acknowledgement(session, row, deadlines.acknowledge_by)
            await session.flush()
            return [RequestView.of(row) for row in rows]

    async def get(self, request_id: str, *, account_id: str | None = None) -> RequestView:
        async with self._tx.begin() as session:
            return RequestView.of(await request_row(session, request_id, account_id))

    async def of_account(
        self, *, account_id: str, status: str | None = None, overdue: bool | None = None, limit: int = 500
    ) -> list[RequestView]:
        """The account's requests, newest first, optionally of one status and (not) overdue."""
        async with self._tx.begin() as session:
            query = select(PrivacyRequestRow).where(PrivacyRequestRow.account_id == account_id)
            if status is not None:
                query = query.where(PrivacyRequestRow.status == status)
            rows = await session.scalars(query.order_by(PrivacyRequestRow.received_at.desc()).limit(limit))
            views = [RequestView.of(row) for row in rows]
        if overdue is not None:
            now = self._tx.clock()
            views = [v for v in views if v.overdue(now) == overdue]
        return views

    async def open_pages(self, size: int = 50) -> AsyncIterator[list[RequestView]]:
        """Every open request of every account, ``size`` at a time in id order: the deadline gauges read them
        all, and the progress records of a thousand erasures waiting for their bus copies would otherwise sit in
        memory together (32 MiB of a worker exporting a whole account)."""
        after = ""
        while True:
            async with self._tx.begin() as session:
                rows = await session.scalars(
                    select(PrivacyRequestRow)
                    .where(PrivacyRequestRow.status.in_(OPEN_STATUSES), PrivacyRequestRow.id > after)
                    .order_by(PrivacyRequestRow.id)
                    .limit(size)
                )
                page = [RequestView.of(row) for row in rows]
            if not page:
                return
            yield page
            if len(page) < size:
                return
            after = page[-1].id

    async def open(self) -> list[RequestView]:
        """Every open request of every account (for the overdue and near-due gauges)."""
        async with self._tx.begin() as session:
            rows = await session.scalars(
                select(PrivacyRequestRow).where(PrivacyRequestRow.status.in_(OPEN_STATUSES))
            )
            return [RequestView.of(row) for row in rows]

    # Customer actions.

    async def confirm(self, *, account_id: str, request_id: str) -> RequestView:
        """The customer (controller) confirms a direct end-user request; only then will it be acted on."""
        async with self._tx.begin() as session:
            row = await request_row(session, request_id, account_id)
            if row.status != "referred":
                raise RequestConflict(f"only a referred request can be confirmed; this one is {row.status}")
            now = self._tx.clock()
            row.status, row.confirmed_at, row.next_run_at = "pending", now, now
            self._audit.add(session, row, "confirmed")
            return RequestView.of(row)

    async def extend(self, *, account_id: str, request_id: str, months: int, reason: str) -> RequestView:
        """Extend the answer period, record the reason and queue the notice. Raises ExtensionRefused."""
        async with self._tx.begin() as session:
            row = await request_row(session, request_id, account_id)
            if row.status not in OPEN_STATUSES:
                raise RequestConflict(f"a {row.status} request cannot be extended")
            deadlines = deadlines_for(row.jurisdiction, aware(row.received_at))  # type: ignore[arg-type]
            until = extended_due_at(
                deadlines,
                months=months,
                now=self._tx.clock(),
                already_extended_until=None if row.extended_until is None else aware(row.extended_until),
            )
            row.extended_until, row.extension_reason = until, reason
            self._audit.add(session, row, "extended", detail={"months": months, "until": until.isoformat()})
            self._notices.queue(session, row, "extension", extra={"months": months, "reason": reason})
            return RequestView.of(row)

    async def requeue(self, *, account_id: str, request_id: str) -> tuple[RequestView, bool]:
        """Put a ``failed`` request back to work: attempts reset to zero, due now, resuming from its saved
        progress (stores already erased stay erased), audited as ``requeued``. Idempotent: a request that is
        already queued or running is returned unchanged with False. Raises RequestConflict for a request that
        is finished (completed, denied), not yet confirmed (referred), or whose working set is gone."""
        async with self._tx.begin() as session:
            # Locked (PostgreSQL): of two concurrent re-queues one waits and then sees the request queued.
            row = await request_row(session, request_id, account_id, lock=True)
            if row.status in WORKABLE_STATUSES:
                return RequestView.of(row), False
            if row.status != "failed":
                raise RequestConflict(f"only a failed request can be re-queued; this one is {row.status}")
            if row.scope == "subject" and not await self._working_sets.held(session, row.id):
                raise RequestConflict("the request's working set is gone; submit the request again")
            progress, failed_at = _cleared_failures(row.progress or {})
            phase = progress.get("phase")
            status: Status = (
                "pending" if phase is None else "awaiting_sweep" if phase == "sweep_wait" else "in_progress"
            )
            previous = row.attempts or 0
            now = self._tx.clock()
            row.progress, row.status, row.attempts = progress, status, 0
            row.next_run_at, row.lease_owner, row.lease_until = now, None, None
            self._audit.add(
                session,
                row,
                "requeued",
                detail={"previous_attempts": previous, "failed_at": sorted(failed_at)},
            )
            return RequestView.of(row), True

    async def deny(self, *, account_id: str, request_id: str, basis: str) -> RequestView:
        """The controller refuses a request it has not let start; the working set goes, the notice is queued."""
        async with self._tx.begin() as session:
            row = await request_row(session, request_id, account_id)
            if row.status not in ("referred", "pending"):
                raise RequestConflict(f"a {row.status} request cannot be denied")
            row.status, row.denial_basis, row.completed_at = "denied", basis, self._tx.clock()
            row.next_run_at = None
            await self._working_sets.drop(session, [row.id])
            self._audit.add(session, row, "denied")
            self._notices.queue(session, row, "denied", extra={"basis": basis})
            return RequestView.of(row)


def _cleared_failures(saved: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A failed request's progress with its errors and attempt counts cleared (a new value, so the JSON column is
    written), and the names of the steps (stores, the closure) that had failed."""
    progress = copy.deepcopy(dict(saved))
    failed_at = [
        name
        for name, state in {"closure": progress.get("closure", {}), **progress.get("stores", {})}.items()
        if isinstance(state, dict) and state.pop("error", None) is not None
    ]
    for state in progress.get("stores", {}).values():
        state["attempts"] = 0
    for key in ("closure", "retry_in_s", "attempts", "last_error", "failure", "pass", "abandoned"):
        progress.pop(key, None)
    return progress, failed_at

"""The worker's side of the request records: leasing due requests, saving their progress, completing them.

``claim`` leases requests to one worker at a time: a worker that dies simply lets its lease run out and another
(or the restarted one) picks the request up where its saved progress says. Every later write names the lease
owner and leaves alone a request whose lease passed to someone else, so two workers never both act on one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select, update

from tapwire_core.control.privacy.models import PrivacyRequestRow, PrivacyRequestSubjectRow
from tapwire_privacy.records import WORKABLE_STATUSES, RequestView, Status
from tapwire_privacy.repository.audit import AuditAction, AuditLog
from tapwire_privacy.repository.notices import NoticeQueue
from tapwire_privacy.repository.requests import RequestConflict
from tapwire_privacy.repository.transactions import Transactions
from tapwire_privacy.repository.working_sets import WorkingSets
from tapwire_privacy.stores.control_deletes import make_deletes_physical


@dataclass
class ProgressUpdate:
    """One request's new progress; ``release`` gives up the lease (the request waits for ``next_run_at``)."""

    request_id: str
    progress: dict[str, Any]
    status: Status | None = None
    next_run_at: dt.datetime | None = None
    verification: dict[str, Any] | None = None
    closure: Sequence[str] | None = None
    attempts: int | None = None
    release: bool = False
    actions: list[AuditAction] = field(default_factory=list)


@dataclass(frozen=True)
class Completion:
    """How one request closes: its final progress, the proof, and the audit detail (no personal data)."""

    request_id: str
    progress: dict[str, Any]
    verification: dict[str, Any] | None
    status: Status = "completed"
    export_expires_at: dt.datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    notify: bool = True
    """Queue the customer's notice; an offboarding's account (and its webhook setting) is gone by then."""


class RequestLeases:
    def __init__(
        self,
        transactions: Transactions,
        *,
        audit: AuditLog,
        notices: NoticeQueue,
        working_sets: WorkingSets,
    ) -> None:
        self._tx = transactions
        self._audit = audit
        self._notices = notices
        self._working_sets = working_sets

    async def claim(self, *, owner: str, lease_s: float, limit: int) -> list[RequestView]:
        """Lease up to ``limit`` due requests to ``owner``; oldest first. Safe against concurrent workers."""
        now = self._tx.clock()
        async with self._tx.begin() as session:
            candidates = await session.scalars(
                select(PrivacyRequestRow.id)
                .where(
                    PrivacyRequestRow.status.in_(WORKABLE_STATUSES),
                    PrivacyRequestRow.next_run_at <= now,
                    or_(PrivacyRequestRow.lease_until.is_(None), PrivacyRequestRow.lease_until < now),
                )
                .order_by(PrivacyRequestRow.next_run_at)
                .limit(limit)
            )
            ids = list(candidates)
            if not ids:
                return []
            # The lease condition is repeated in the UPDATE, so of two workers racing only one wins a request.
            await session.execute(
                update(PrivacyRequestRow)
                .where(
                    PrivacyRequestRow.id.in_(ids),
                    or_(PrivacyRequestRow.lease_until.is_(None), PrivacyRequestRow.lease_until < now),
                )
                .values(lease_owner=owner, lease_until=now + dt.timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
            rows = await session.scalars(
                select(PrivacyRequestRow)
                .where(PrivacyRequestRow.id.in_(ids), PrivacyRequestRow.lease_owner == owner)
                .order_by(PrivacyRequestRow.next_run_at)
                .execution_options(populate_existing=True)
            )
            claimed = [RequestView.of(row) for row in rows]
        return claimed

    async def renew(self, request_ids: Sequence[str], *, owner: str, lease_s: float) -> int:
        """Extend ``owner``'s lease on those of ``request_ids`` it still holds to ``lease_s`` from now, so a long
        pass is not taken for a dead one; returns how many it holds."""
        if not request_ids:
            return 0
        async with self._tx.begin() as session:
            result = await session.execute(
                update(PrivacyRequestRow)
                .where(PrivacyRequestRow.id.in_(list(request_ids)), PrivacyRequestRow.lease_owner == owner)
                .values(lease_until=self._tx.clock() + dt.timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def save_many(self, updates: Sequence[ProgressUpdate], *, owner: str) -> set[str]:
        """Persist progress of several requests (and their audit ``actions``) in one transaction, as set-wise
        statements (a batch of a thousand requests is a few statements, not a thousand).

        Returns the ids whose lease passed to another worker; those are left untouched.
        """
        if not updates:
            return set()
        now = self._tx.clock()
        async with self._tx.begin() as session:
            ids = [u.request_id for u in updates]
            held = {
                row.id: row.account_id
                for row in await session.execute(
                    select(PrivacyRequestRow.id, PrivacyRequestRow.account_id).where(
                        PrivacyRequestRow.id.in_(ids), PrivacyRequestRow.lease_owner == owner
                    )
                )
            }
            mine = [u for u in updates if u.request_id in held]
            changes: list[dict[str, Any]] = []
            for u in mine:
                change: dict[str, Any] = {"id": u.request_id, "progress": u.progress}
                optional = {
                    "status": u.status,
                    "next_run_at": u.next_run_at,
                    "verification": u.verification,
                    "attempts": u.attempts,
                }
                change.update({k: v for k, v in optional.items() if v is not None})
                if u.release:
                    change.update(lease_owner=None, lease_until=None)
                changes.append(change)
            if changes:
                await session.execute(update(PrivacyRequestRow), changes)
            stopped = [u.request_id for u in mine if u.status == "failed"]
            if stopped:
                # The customer hears of a request that stopped being retried, with the cause, like any outcome.
                by_id = {u.request_id: u for u in mine}
                for row in await session.scalars(
                    select(PrivacyRequestRow).where(PrivacyRequestRow.id.in_(stopped))
                ):
                    cause = by_id[row.id].progress.get("failure", {}).get("cause")
                    self._notices.queue(session, row, "failed", extra={"cause": cause})
            await self._working_sets.set_closures(
                session, {u.request_id: list(u.closure) for u in mine if u.closure is not None}
            )
            await self._audit.add_many(
                session,
                [(u.request_id, held[u.request_id], action) for u in mine for action in u.actions],
                at=now,
            )
        return set(ids) - set(held)

    async def complete_many(self, completions: Sequence[Completion], *, owner: str) -> set[str]:
        """Close several requests at once: completion records, working sets deleted, notices queued, leases
        released. Returns the ids whose lease passed to another worker (left open)."""
        if not completions:
            return set()
        now = self._tx.clock()
        async with self._tx.begin() as session:
            by_id = {c.request_id: c for c in completions}
            rows = list(
                await session.scalars(
                    select(PrivacyRequestRow).where(
                        PrivacyRequestRow.id.in_(list(by_id)), PrivacyRequestRow.lease_owner == owner
                    )
                )
            )
            for row in rows:
                done = by_id[row.id]
                row.progress, row.status, row.completed_at = done.progress, done.status, now
                row.verification = done.verification
                row.next_run_at, row.lease_owner, row.lease_until = None, None, None
                if done.export_expires_at is not None:
                    row.export_expires_at = done.export_expires_at
                self._audit.add(session, row, done.status, detail=done.detail)
                if done.notify:
                    self._notices.queue(session, row, done.status)
            finished = [row.id for row in rows]
            if finished:
                await self._working_sets.drop(session, finished)
        if finished:
            # The working sets held the subjects' identifiers in plaintext: gone from the files too.
            await make_deletes_physical(self._tx.engine, [PrivacyRequestSubjectRow.__tablename__])
        return set(by_id) - set(finished)

    async def complete(
        self,
        request_id: str,
        *,
        owner: str,
        progress: dict[str, Any],
        verification: dict[str, Any] | None,
        status: Status = "completed",
        export_expires_at: dt.datetime | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Close one request (see ``complete_many``). Raises RequestConflict if the lease was lost."""
        lost = await self.complete_many(
            [Completion(request_id, progress, verification, status, export_expires_at, detail or {})],
            owner=owner,
        )
        if lost:
            raise RequestConflict("the lease on this request passed to another worker")

"""The privacy request store: request records, their working set, audit trail, suppressions and notices.

Every method opens its own short transaction on the control store's engine. Timestamps come from the injected
clock. Records hold no personal data; the subject's identifiers live in ``privacy_request_subjects`` until the
request completes, when that row is deleted. ``claim`` leases requests to one worker at a time: a worker that
dies simply lets its lease run out and another (or the restarted one) picks the request up where its saved
progress says.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tapwire_core.clock import Clock
from tapwire_core.control.marketing_objections import record_objection
from tapwire_core.control.privacy.models import (
    PrivacyAuditRow,
    PrivacyNoticeRow,
    PrivacyRequestRow,
    PrivacyRequestSubjectRow,
    SuppressionRow,
)
from tapwire_core.control.privacy.subject_keys import (
    IDENTIFIER_SALT,
    LINK_SIGNING,
    TENANT_WIDE,
    deployment_secret,
    key_hash,
    subject_hash,
)
from tapwire_privacy.deadlines import (
    ExtensionRefused,
    Jurisdiction,
    deadlines_for,
    extended_due_at,
)
from tapwire_privacy.records import (
    OPEN_STATUSES,
    WORKABLE_STATUSES,
    Channel,
    RequestType,
    RequestView,
    Scope,
    Status,
    aware,
    iso,
)

ACKNOWLEDGEMENT = "acknowledgement"
"""The notice kind confirming receipt of a CCPA request."""


class RequestNotFound(LookupError):
    """No request with this id in this account."""


class RequestConflict(ValueError):
    """The request is not in a state that allows this action."""


@dataclass(frozen=True)
class Subject:
    """The working set of an open request (personal data; never logged)."""

    identifiers: list[str]
    closure: list[str] | None
    payload: dict[str, Any] = field(default_factory=dict)


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
    actions: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class Completion:
    """How one request closes: its final progress, the proof, and the audit detail (no personal data)."""

    request_id: str
    progress: dict[str, Any]
    verification: dict[str, Any] | None
    status: Status = "completed"
    export_expires_at: dt.datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    id: int
    account_id: str
    request_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int


class PrivacyRepository:
    """Request records and everything attached to them, on the control store's engine."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock, record_retention_days: int = 730) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._retention = dt.timedelta(days=record_retention_days)

    @property
    def clock(self) -> Clock:
        return self._clock

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            yield session

    async def secret(self, name: str = IDENTIFIER_SALT) -> bytes:
        async with self._tx() as session:
            return await deployment_secret(session, name)

    async def link_key(self) -> bytes:
        return await self.secret(LINK_SIGNING)

    # Creating and reading.

    async def create(
        self,
        *,
        account_id: str,
        type: RequestType,
        scope: Scope,
        channel: Channel,
        jurisdiction: Jurisdiction,
        keys: Sequence[str],
        payload: dict[str, Any] | None = None,
        status: Status = "pending",
    ) -> RequestView:
        """Record a new request; a subject request keeps its identifiers in the working set only."""
        created = await self.create_many(
            account_id=account_id,
            type=type,
            scope=scope,
            channel=channel,
            jurisdiction=jurisdiction,
            subjects=[keys],
            payload=payload,
            status=status,
        )
        return created[0]

    async def create_many(
        self,
        *,
        account_id: str,
        type: RequestType,
        scope: Scope,
        channel: Channel,
        jurisdiction: Jurisdiction,
        subjects: Sequence[Sequence[str]],
        payload: dict[str, Any] | None = None,
        status: Status = "pending",
    ) -> list[RequestView]:
        """Record one request per entry of ``subjects`` (each a subject's keys) in one transaction: all or none
        are recorded, and they fall due together, so the worker can serve them with one pass."""
        now = self._clock()
        deadlines = deadlines_for(jurisdiction, now)
        async with self._tx() as session:
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
                    progress={},
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
                    session.add(
                        PrivacyRequestSubjectRow(
                            request_id=row.id, identifiers=list(keys), closure=None, payload=payload or {}
                        )
                    )
                self._audit(session, row, "received", detail={"channel": channel, "identifiers": len(keys)})
                if status == "referred":
                    self._notice(session, row, "direct_request_received")
                if deadlines.acknowledge_by is not None and scope == "subject":
                    self._acknowledge(session, row, deadlines.acknowledge_by)
            await session.flush()
            return [RequestView.of(row) for row in rows]

    async def get(self, request_id: str, *, account_id: str | None = None) -> RequestView:
        async with self._tx() as session:
            return RequestView.of(await self._row(session, request_id, account_id))

    async def list_requests(
        self, *, account_id: str, status: str | None = None, overdue: bool | None = None, limit: int = 500
    ) -> list[RequestView]:
        async with self._tx() as session:
            query = select(PrivacyRequestRow).where(PrivacyRequestRow.account_id == account_id)
            if status is not None:
                query = query.where(PrivacyRequestRow.status == status)
            rows = await session.scalars(query.order_by(PrivacyRequestRow.received_at.desc()).limit(limit))
            views = [RequestView.of(row) for row in rows]
        if overdue is not None:
            now = self._clock()
            views = [v for v in views if v.overdue(now) == overdue]
        return views

    async def open_requests(self) -> list[RequestView]:
        """Every open request of every account (for the overdue and near-due gauges)."""
        async with self._tx() as session:
            rows = await session.scalars(
                select(PrivacyRequestRow).where(PrivacyRequestRow.status.in_(OPEN_STATUSES))
            )
            return [RequestView.of(row) for row in rows]

    async def subject(self, request_id: str) -> Subject | None:
        async with self._tx() as session:
            row = await session.get(PrivacyRequestSubjectRow, request_id)
            if row is None:
                return None
            return Subject(
                list(row.identifiers), None if row.closure is None else list(row.closure), row.payload
            )

    async def audit_trail(self, request_id: str) -> list[dict[str, Any]]:
        async with self._tx() as session:
            rows = await session.scalars(
                select(PrivacyAuditRow)
                .where(PrivacyAuditRow.request_id == request_id)
                .order_by(PrivacyAuditRow.id)
            )
            return [
                {"at": aware(r.at), "action": r.action, "store": r.store, "detail": dict(r.detail)}
                for r in rows
            ]

    # Customer actions.

    async def confirm(self, *, account_id: str, request_id: str) -> RequestView:
        """The customer (controller) confirms a direct end-user request; only then will it be acted on."""
        async with self._tx() as session:
            row = await self._row(session, request_id, account_id)
            if row.status != "referred":
                raise RequestConflict(f"only a referred request can be confirmed; this one is {row.status}")
            now = self._clock()
            row.status, row.confirmed_at, row.next_run_at = "pending", now, now
            self._audit(session, row, "confirmed")
            return RequestView.of(row)

    async def extend(self, *, account_id: str, request_id: str, months: int, reason: str) -> RequestView:
        """Extend the answer period, record the reason and queue the notice. Raises ExtensionRefused."""
        async with self._tx() as session:
            row = await self._row(session, request_id, account_id)
            if row.status not in OPEN_STATUSES:
                raise RequestConflict(f"a {row.status} request cannot be extended")
            deadlines = deadlines_for(row.jurisdiction, aware(row.received_at))  # type: ignore[arg-type]
            until = extended_due_at(
                deadlines,
                months=months,
                now=self._clock(),
                already_extended_until=None if row.extended_until is None else aware(row.extended_until),
            )
            row.extended_until, row.extension_reason = until, reason
            self._audit(session, row, "extended", detail={"months": months, "until": until.isoformat()})
            self._notice(session, row, "extension", extra={"months": months, "reason": reason})
            return RequestView.of(row)

    async def requeue(self, *, account_id: str, request_id: str) -> tuple[RequestView, bool]:
        """Put a ``failed`` request back to work: attempts reset to zero, due now, resuming from its saved
        progress (stores already erased stay erased), audited as ``requeued``. Idempotent: a request that is
        already queued or running is returned unchanged with False. Raises RequestConflict for a request that
        is finished (completed, denied), not yet confirmed (referred), or whose working set is gone."""
        async with self._tx() as session:
            # Locked (PostgreSQL): of two concurrent re-queues one waits and then sees the request queued.
            row = await self._row(session, request_id, account_id, lock=True)
            if row.status in WORKABLE_STATUSES:
                return RequestView.of(row), False
            if row.status != "failed":
                raise RequestConflict(f"only a failed request can be re-queued; this one is {row.status}")
            if row.scope == "subject" and await session.get(PrivacyRequestSubjectRow, row.id) is None:
                raise RequestConflict("the request's working set is gone; submit the request again")
            progress = copy.deepcopy(dict(row.progress or {}))  # a new value, so the JSON column is written
            failed_at = [
                name
                for name, state in {
                    "closure": progress.get("closure", {}),
                    **progress.get("stores", {}),
                }.items()
                if isinstance(state, dict) and state.pop("error", None) is not None
            ]
            for state in progress.get("stores", {}).values():
                state["attempts"] = 0
            progress.pop("closure", None)
            progress.pop("retry_in_s", None)
            progress.pop("attempts", None)
            phase = progress.get("phase")
            status: Status = (
                "pending" if phase is None else "awaiting_sweep" if phase == "sweep_wait" else "in_progress"
            )
            previous = row.attempts or 0
            now = self._clock()
            row.progress, row.status, row.attempts = progress, status, 0
            row.next_run_at, row.lease_owner, row.lease_until = now, None, None
            self._audit(
                session,
                row,
                "requeued",
                detail={"previous_attempts": previous, "failed_at": sorted(failed_at)},
            )
            return RequestView.of(row), True

    async def unacknowledged(self) -> list[RequestView]:
        """Open requests whose acknowledgement deadline passed with the acknowledgement still undelivered."""
        now = self._clock()
        async with self._tx() as session:
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

    async def deny(self, *, account_id: str, request_id: str, basis: str) -> RequestView:
        async with self._tx() as session:
            row = await self._row(session, request_id, account_id)
            if row.status not in ("referred", "pending"):
                raise RequestConflict(f"a {row.status} request cannot be denied")
            row.status, row.denial_basis, row.completed_at = "denied", basis, self._clock()
            row.next_run_at = None
            await session.execute(
                delete(PrivacyRequestSubjectRow).where(PrivacyRequestSubjectRow.request_id == row.id)
            )
            self._audit(session, row, "denied")
            self._notice(session, row, "denied", extra={"basis": basis})
            return RequestView.of(row)

    # The worker's side.

    async def claim(self, *, owner: str, lease_s: float, limit: int) -> list[RequestView]:
        """Lease up to ``limit`` due requests to ``owner``; oldest first. Safe against concurrent workers."""
        now = self._clock()
        async with self._tx() as session:
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

    async def save_many(self, updates: Sequence[ProgressUpdate], *, owner: str) -> set[str]:
        """Persist progress of several requests (and their audit ``actions``) in one transaction, as set-wise
        statements (a batch of a thousand requests is a few statements, not a thousand).

        Returns the ids whose lease passed to another worker; those are left untouched.
        """
        if not updates:
            return set()
        now = self._clock()
        async with self._tx() as session:
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
            audit: list[dict[str, Any]] = []
            closures: list[dict[str, Any]] = []
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
                if u.closure is not None:
                    closures.append({"request_id": u.request_id, "closure": list(u.closure)})
                audit.extend(
                    {
                        "request_id": u.request_id,
                        "account_id": held[u.request_id],
                        "at": now,
                        "action": action,
                        "store": store,
                        "detail": detail,
                    }
                    for action, store, detail in u.actions
                )
            if changes:
                await session.execute(update(PrivacyRequestRow), changes)
            if closures:
                await session.execute(update(PrivacyRequestSubjectRow), closures)
            if audit:
                await session.execute(insert(PrivacyAuditRow), audit)
        return set(ids) - set(held)

    async def complete_many(self, completions: Sequence[Completion], *, owner: str) -> set[str]:
        """Close several requests at once: completion records, working sets deleted, notices queued, leases
        released. Returns the ids whose lease passed to another worker (left open)."""
        if not completions:
            return set()
        now = self._clock()
        async with self._tx() as session:
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
                self._audit(session, row, done.status, detail=done.detail)
                self._notice(session, row, done.status)
            finished = [row.id for row in rows]
            if finished:
                await session.execute(
                    delete(PrivacyRequestSubjectRow).where(PrivacyRequestSubjectRow.request_id.in_(finished))
                )
        return set(by_id) - set(finished)

    async def record_objection(self, *, account_id: str, request_id: str, keys: Iterable[str]) -> int:
        async with self._tx() as session:
            return await record_objection(
                session, account_id=account_id, keys=keys, request_id=request_id, at=self._clock()
            )

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

    async def mark_export_erased(self, request_id: str) -> None:
        async with self._tx() as session:
            row = await self._row(session, request_id, None)
            row.export_erased_at = self._clock()
            # The hashes only served to find this archive for a later erasure; with it gone, they go too.
            row.progress = {k: v for k, v in (row.progress or {}).items() if k != "archive_key_hashes"}
            self._audit(session, row, "export_archive_erased", store="export_archives")

    async def expired_exports(self) -> list[RequestView]:
        now = self._clock()
        async with self._tx() as session:
            rows = await session.scalars(
                select(PrivacyRequestRow).where(
                    PrivacyRequestRow.type == "export",
                    PrivacyRequestRow.export_expires_at <= now,
                    PrivacyRequestRow.export_erased_at.is_(None),
                )
            )
            return [RequestView.of(row) for row in rows]

    # Suppression.

    async def suppress(
        self, *, account_id: str, request_id: str, keys: Iterable[str] | None, days: int
    ) -> int:
        """List ``keys`` (or, with None, the whole account) as suppressed; returns how many were new."""
        added = await self.suppress_many([(account_id, request_id, keys)], days=days)
        return added[request_id]

    async def suppress_many(
        self, entries: Sequence[tuple[str, str, Iterable[str] | None]], *, days: int
    ) -> dict[str, int]:
        """Suppress each (account, request id, keys-or-None-for-the-account) in one transaction; per request,
        how many list entries were new. Existing entries get the later expiry."""
        now = self._clock()
        expires = now + dt.timedelta(days=days)
        added: dict[str, int] = {}
        async with self._tx() as session:
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            wanted: dict[str, dict[str, str]] = {}  # account -> hash -> first request naming it
            per_request: dict[str, tuple[str, set[str]]] = {}
            for account_id, request_id, keys in entries:
                own = {TENANT_WIDE} if keys is None else {key_hash(salt, account_id, key) for key in keys}
                per_request[request_id] = (account_id, own)
                for hashed in own:
                    wanted.setdefault(account_id, {}).setdefault(hashed, request_id)
            for account_id, owners in wanted.items():
                existing = set(
                    await session.scalars(
                        select(SuppressionRow.key_hash).where(
                            SuppressionRow.account_id == account_id, SuppressionRow.key_hash.in_(list(owners))
                        )
                    )
                )
                if existing:
                    await session.execute(
                        update(SuppressionRow)
                        .where(SuppressionRow.account_id == account_id, SuppressionRow.key_hash.in_(existing))
                        .values(expires_at=expires)
                    )
                fresh = [
                    {
                        "account_id": account_id,
                        "key_hash": hashed,
                        "request_id": request_id,
                        "created_at": now,
                        "expires_at": expires,
                    }
                    for hashed, request_id in owners.items()
                    if hashed not in existing
                ]
                if fresh:
                    await session.execute(insert(SuppressionRow), fresh)
                for request_id, (account, own) in per_request.items():
                    if account == account_id:
                        added[request_id] = sum(
                            1 for h in own if h not in existing and owners[h] == request_id
                        )
        return added

    async def subjects(self, request_ids: Sequence[str]) -> dict[str, Subject]:
        """The working sets of several requests (missing ones left out), in one query."""
        async with self._tx() as session:
            rows = await session.scalars(
                select(PrivacyRequestSubjectRow).where(PrivacyRequestSubjectRow.request_id.in_(request_ids))
            )
            return {
                row.request_id: Subject(
                    list(row.identifiers), None if row.closure is None else list(row.closure), row.payload
                )
                for row in rows
            }

    # Notices.

    async def due_notices(self, limit: int = 100) -> list[Notice]:
        now = self._clock()
        async with self._tx() as session:
            rows = await session.scalars(
                select(PrivacyNoticeRow)
                .where(PrivacyNoticeRow.delivered_at.is_(None), PrivacyNoticeRow.next_attempt_at <= now)
                .order_by(PrivacyNoticeRow.id)
                .limit(limit)
            )
            return [
                Notice(r.id, r.account_id, r.request_id, r.kind, dict(r.payload), r.attempts) for r in rows
            ]

    async def notices_for(self, request_id: str) -> list[dict[str, Any]]:
        async with self._tx() as session:
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

    async def notice_result(self, notice_id: int, *, error: str | None, retry_in_s: float) -> None:
        async with self._tx() as session:
            row = await session.get(PrivacyNoticeRow, notice_id)
            if row is None:
                return
            now = self._clock()
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

    # Retention.

    async def purge_expired(self) -> dict[str, int]:
        """Drop request records and audit rows past 24 months, and suppressions past their expiry."""
        now = self._clock()
        async with self._tx() as session:
            requests = await session.execute(
                delete(PrivacyRequestRow).where(PrivacyRequestRow.retain_until < now)
            )
            audit = await session.execute(
                delete(PrivacyAuditRow).where(PrivacyAuditRow.at < now - self._retention)
            )
            notices = await session.execute(
                delete(PrivacyNoticeRow).where(PrivacyNoticeRow.created_at < now - self._retention)
            )
            suppressions = await session.execute(
                delete(SuppressionRow).where(SuppressionRow.expires_at < now)
            )
        return {
            "requests": requests.rowcount,  # type: ignore[attr-defined]
            "audit": audit.rowcount,  # type: ignore[attr-defined]
            "notices": notices.rowcount,  # type: ignore[attr-defined]
            "suppressions": suppressions.rowcount,  # type: ignore[attr-defined]
        }

    # Helpers.

    async def _row(
        self,
        session: AsyncSession,
        request_id: str,
        account_id: str | None,
        *,
        refresh: bool = False,
        lock: bool = False,
    ) -> PrivacyRequestRow:
        row = await session.get(
            PrivacyRequestRow, request_id, populate_existing=refresh, with_for_update=lock or None
        )
        if row is None or (account_id is not None and row.account_id != account_id):
            raise RequestNotFound(request_id)
        return row

    def _audit(
        self,
        session: AsyncSession,
        row: PrivacyRequestRow,
        action: str,
        *,
        store: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        session.add(
            PrivacyAuditRow(
                request_id=row.id,
                account_id=row.account_id,
                at=self._clock(),
                action=action,
                store=store,
                detail=detail or {},
            )
        )

    def _acknowledge(self, session: AsyncSession, row: PrivacyRequestRow, by: dt.datetime) -> None:
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
        self._notice(session, row, ACKNOWLEDGEMENT, extra={"jurisdiction": row.jurisdiction, **when})
        self._audit(session, row, "acknowledgement_queued", detail={"acknowledge_by": iso(by)})

    def _notice(
        self, session: AsyncSession, row: PrivacyRequestRow, kind: str, *, extra: dict[str, Any] | None = None
    ) -> None:
        now = self._clock()
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


__all__ = ["ExtensionRefused", "PrivacyRepository", "RequestConflict", "RequestNotFound", "Subject"]

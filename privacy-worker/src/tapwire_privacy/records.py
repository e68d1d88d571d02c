"""Plain values for privacy requests as callers see them (never ORM rows), and their JSON form."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from tapwire_core.control.privacy.models import PrivacyRequestRow

RequestType = Literal["erasure", "export", "rectify", "objection"]
ScopeKind = Literal["subject", "tenant"]
"""What a request covers: one subject's data, or the whole account's (the API's and the record's ``scope``)."""
Channel = Literal["api", "clevertap", "direct"]
Status = Literal["referred", "pending", "in_progress", "awaiting_sweep", "completed", "denied", "failed"]
REQUEST_STATUSES: tuple[Status, ...] = (
    "referred",
    "pending",
    "in_progress",
    "awaiting_sweep",
    "completed",
    "denied",
    "failed",
)
# Not answered yet. A failed request is still owed (an operator re-queues it), so it counts as open.
OPEN_STATUSES: tuple[Status, ...] = ("referred", "pending", "in_progress", "awaiting_sweep", "failed")
WORKABLE_STATUSES: tuple[Status, ...] = ("pending", "in_progress", "awaiting_sweep")


def aware(moment: dt.datetime) -> dt.datetime:
    """SQLite keeps no zone; every timestamp the store writes is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def maybe_aware(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else aware(moment)


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else aware(moment).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RequestView:
    """A request record: what the API shows and the worker acts on. Contains no personal data."""

    id: str
    account_id: str
    type: RequestType
    scope: ScopeKind
    status: Status
    channel: Channel
    jurisdiction: str
    subject_hash: str | None
    received_at: dt.datetime
    acknowledge_by: dt.datetime | None
    due_at: dt.datetime
    extension_notice_by: dt.datetime
    extended_until: dt.datetime | None
    extension_reason: str | None
    confirmed_at: dt.datetime | None
    completed_at: dt.datetime | None
    denial_basis: str | None
    progress: dict[str, Any]
    verification: dict[str, Any] | None
    next_run_at: dt.datetime | None
    attempts: int
    export_expires_at: dt.datetime | None
    export_erased_at: dt.datetime | None
    retain_until: dt.datetime

    @property
    def effective_due_at(self) -> dt.datetime:
        return self.extended_until or self.due_at

    def overdue(self, now: dt.datetime) -> bool:
        return (self.completed_at or now) > self.effective_due_at and self.status not in ("denied",)

    @classmethod
    def of(cls, row: PrivacyRequestRow) -> RequestView:
        return cls(
            id=row.id,
            account_id=row.account_id,
            type=row.type,  # type: ignore[arg-type]
            scope=row.scope,  # type: ignore[arg-type]
            status=row.status,  # type: ignore[arg-type]
            channel=row.channel,  # type: ignore[arg-type]
            jurisdiction=row.jurisdiction,
            subject_hash=row.subject_hash,
            received_at=aware(row.received_at),
            acknowledge_by=maybe_aware(row.acknowledge_by),
            due_at=aware(row.due_at),
            extension_notice_by=aware(row.extension_notice_by),
            extended_until=maybe_aware(row.extended_until),
            extension_reason=row.extension_reason,
            confirmed_at=maybe_aware(row.confirmed_at),
            completed_at=maybe_aware(row.completed_at),
            denial_basis=row.denial_basis,
            progress=dict(row.progress or {}),
            verification=None if row.verification is None else dict(row.verification),
            next_run_at=maybe_aware(row.next_run_at),
            attempts=row.attempts or 0,
            export_expires_at=maybe_aware(row.export_expires_at),
            export_erased_at=maybe_aware(row.export_erased_at),
            retain_until=aware(row.retain_until),
        )

    def to_json(self, *, now: dt.datetime, export_url: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "scope": self.scope,
            "status": self.status,
            "channel": self.channel,
            "jurisdiction": self.jurisdiction,
            "received_at": iso(self.received_at),
            "acknowledge_by": iso(self.acknowledge_by),
            "due_at": iso(self.due_at),
            "extension_notice_by": iso(self.extension_notice_by),
            "extended_until": iso(self.extended_until),
            "extension_reason": self.extension_reason,
            "confirmed_at": iso(self.confirmed_at),
            "completed_at": iso(self.completed_at),
            "overdue": self.overdue(now),
            "denial_basis": self.denial_basis,
            "progress": self.progress.get("stores", {}),
            "phase": self.progress.get("phase"),
            "recipients": self.progress.get("recipients", {}),
            "attempts": self.attempts,
            "failure": self.progress.get("failure"),
            "verification": self.verification,
            "subject_hash": self.subject_hash,
        }
        if self.type == "erasure":
            # Copies on the bus no erasure reaches, and when the last is gone (then the request completes).
            body["bus_copies"] = self.progress.get("bus_copies", [])
            body["copies_gone_at"] = self.progress.get("copies_gone_at")
            if "offboarding" in self.progress:
                # The account's deletion: access revoked, its archive (digest, rows), as routes.offboarding shows it.
                body["offboarding"] = self.progress["offboarding"]
        if self.type == "export":
            body["export_expires_at"] = iso(self.export_expires_at)
            body["export_erased_at"] = iso(self.export_erased_at)
            if export_url is not None:
                body["export_url"] = export_url
        return body

"""Tables of the privacy domain. The revision ``0005_privacy_requests`` creates exactly these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.accounts.models import JSON_DOCUMENT
from tapwire_core.control.base import Base

REQUEST_TYPES = ("erasure", "export", "rectify", "objection")
REQUEST_SCOPES = ("subject", "tenant")
REQUEST_STATUSES = ("referred", "pending", "in_progress", "awaiting_sweep", "completed", "denied", "failed")
REQUEST_CHANNELS = ("api", "clevertap", "direct")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class PrivacyRequestRow(Base):
    """One data-subject (or whole-tenant) request. Holds no personal data; kept until ``retain_until``.

    ``progress`` maps a store name to its state (``{"erase": "done", "removed": 12, "attempts": 1, ...}``);
    ``lease_owner``/``lease_until`` let exactly one worker act on the request at a time, and a crashed worker's
    lease simply runs out.
    """

    __tablename__ = "privacy_requests"
    __table_args__ = (
        CheckConstraint(_one_of("type", REQUEST_TYPES), name="type"),
        CheckConstraint(_one_of("scope", REQUEST_SCOPES), name="scope"),
        CheckConstraint(_one_of("status", REQUEST_STATUSES), name="status"),
        CheckConstraint(_one_of("channel", REQUEST_CHANNELS), name="channel"),
        Index("ix_privacy_requests_status_next_run_at", "status", "next_run_at"),
        Index("ix_privacy_requests_account_id_received_at", "account_id", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    jurisdiction: Mapped[str] = mapped_column(String(8))
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledge_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    extension_notice_by: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    extended_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    extension_reason: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    denial_basis: Mapped[str | None] = mapped_column(String(500))
    progress: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, server_default=text("'{}'"))
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    export_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    export_erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retain_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PrivacyRequestSubjectRow(Base):
    """The working set of an open request: the identifiers named and found linked, and a rectification's fields.

    This is the only privacy table with personal data; the row is deleted when the request completes.
    """

    __tablename__ = "privacy_request_subjects"

    request_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("privacy_requests.id", ondelete="CASCADE"), primary_key=True
    )
    identifiers: Mapped[list[str]] = mapped_column(JSON_DOCUMENT)
    closure: Mapped[list[str] | None] = mapped_column(JSON_DOCUMENT)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, server_default=text("'{}'"))


class PrivacyAuditRow(Base):
    """One action taken on a request, append-only, without personal data (store names, counts, outcomes)."""

    __tablename__ = "privacy_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str | None] = mapped_column(String(32), index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    action: Mapped[str] = mapped_column(String(48))
    store: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, server_default=text("'{}'"))


class SuppressionRow(Base):
    """An erased subject's identifier hash (or ``*`` for a whole erased tenant): records naming it are dropped.

    Kept until ``expires_at``, at least the raw topic's retention, so no copy still on the bus can bring the data
    back.
    """

    __tablename__ = "privacy_suppressions"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PrivacyNoticeRow(Base):
    """A notice owed to the customer (new direct request, extension, completion), delivered by the worker."""

    __tablename__ = "privacy_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    last_error: Mapped[str | None] = mapped_column(String(500))


class PrivacyKeyRow(Base):
    """Deployment-wide secrets of the privacy service: the identifier hash salt and the link-signing key."""

    __tablename__ = "privacy_keys"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

"""Tables of the console domain: its users, their sign-in sessions, the sign-in throttle and the audit log.

The migration ``0007_console`` creates exactly these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import conv

from tapwire_core.control.accounts.models import JSON_DOCUMENT
from tapwire_core.control.base import Base

ROLE_CHECK = "role IN ('admin', 'marketer', 'analyst', 'privacy')"


class ConsoleUserRow(Base):
    """A person who signs in to an account's console with an email and a password.

    ``password_hash`` is NULL until the invitation is accepted (or after an admin's reset); ``invite_digest``
    is the SHA-256 of the one-time invitation token, which itself is never stored.
    """

    __tablename__ = "console_users"
    __table_args__ = (
        # A fixed name (the naming convention would name it after its first column only).
        UniqueConstraint("account_id", "email", name=conv("uq_console_users_account_email")),
        CheckConstraint(ROLE_CHECK, name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    invite_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConsoleSessionRow(Base):
    """A signed-in browser. ``id`` is the SHA-256 of the session token the cookie carries.

    ``user_id`` is NULL for a session opened with the account's passcode (the first-start admin).
    """

    __tablename__ = "console_sessions"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("console_users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SignInThrottleRow(Base):
    """Failed sign-ins counted per key (an account and login, or a client address) in a sliding window."""

    __tablename__ = "console_sign_in_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntryRow(Base):
    """One console or admin action: who (``actor``, ``role``), what (``action``, ``target``), the outcome."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(254))
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(120))
    target: Mapped[str] = mapped_column(String(500))
    outcome: Mapped[str] = mapped_column(String(16))
    client: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)

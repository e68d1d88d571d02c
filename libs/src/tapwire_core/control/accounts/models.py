"""Tables of the accounts domain. The migration in ``control/migrations/versions`` creates exactly these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, Integer, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.base import Base

JSON_DOCUMENT = JSON().with_variant(JSONB(), "postgresql")


class AccountRow(Base):
    """One tenant. ``id`` is the CleverTap-style account id clients send in ``X-CleverTap-Account-Id``."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    settings: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, server_default=text("'{}'"))


class CredentialRow(Base):
    """A passcode or write key of an account, stored only as a lookup digest and a scrypt hash.

    A revoked credential whose digest was unkeyed keeps ``retired-<id>`` instead: nothing left to guess from.
    """

    __tablename__ = "credentials"
    __table_args__ = (CheckConstraint("kind IN ('passcode', 'write_key')", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(255))
    lookup_digest: Mapped[str] = mapped_column(String(64), unique=True)
    digest_secret_id: Mapped[str | None] = mapped_column(String(16))
    """The credential secret that keyed ``lookup_digest``; None: the unkeyed digest of earlier releases."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

"""Campaigns, the delivery outbox, consent (suppressions) and message interactions.

The migration ``0003_messaging`` creates these tables; ``0006_outbox_devices`` adds the outbox's ``device``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.accounts.models import JSON_DOCUMENT
from tapwire_core.control.base import Base

# SQLite only auto-increments INTEGER PRIMARY KEY columns; BIGINT on PostgreSQL.
ID = BigInteger().with_variant(Integer(), "sqlite")


class CampaignRow(Base):
    """One campaign or transactional send. Times are epoch milliseconds.

    ``status``: scheduled → running → completed, or stopped at any point. ``audience`` holds the CQL ``where``,
    a saved segment id or explicit identities; ``variants`` the content per variant; ``rules`` caps, quiet hours,
    control group, throttling, conversion goal and webhook target.
    """

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    audience: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    variants: Mapped[list[Any]] = mapped_column(JSON_DOCUMENT)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    scheduled_ms: Mapped[int] = mapped_column(BigInteger)
    cutoff_ms: Mapped[int] = mapped_column(BigInteger)
    filled: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    audience_size: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    expired: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_ms: Mapped[int | None] = mapped_column(BigInteger)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)


class OutboxRow(Base):
    """One message to one user on one channel; (campaign, variant, user, channel, device) is the idempotency key.

    ``device`` is empty except for a push campaign sent to all of a user's devices: then each device token gets
    its own row, and ``device`` is a hash of the token (see ``tapwire_messaging.recipients.device_id``).

    ``status``: pending (due at ``due_ms``) → sending (claimed until ``lease_until_ms``) → sent | failed |
    rejected | unregistered; or a rule's verdict without sending: suppressed, capped, control, expired,
    stopped, no_address.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("campaign_id", "variant", "user_key", "channel", "device", name="uq_outbox_key"),
        # Claims walk pending rows in priority order, and look up expired leases of in-flight rows.
        Index("ix_outbox_claim", "status", "priority", "id"),
        Index("ix_outbox_lease", "status", "lease_until_ms"),
        Index("ix_outbox_recent", "account_id", "user_key", "channel", "sent_ms"),
        Index("ix_outbox_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(32))
    user_key: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(16))
    device: Mapped[str] = mapped_column(String(32), server_default=text("''"))
    address: Mapped[str] = mapped_column(String(1024))
    platform: Mapped[str | None] = mapped_column(String(16))
    context: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    status: Mapped[str] = mapped_column(String(16))
    due_ms: Mapped[int] = mapped_column(BigInteger)
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    provider_id: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[str | None] = mapped_column(String(500))
    sent_ms: Mapped[int | None] = mapped_column(BigInteger)


class ConsentRow(Base):
    """A subscription state for a user key, email address or phone number on one channel (or ``all``).

    ``state`` is ``unsubscribed`` (no promotional messages on the channel), ``subscribed``, ``opted_out`` (an
    explicit opt-out of the channel: no messages at all, transactional ones included, until a resubscribe) or
    ``objected`` (a privacy objection: no marketing at all, whatever later resubscribes say, until the privacy
    service lifts it; earlier versions wrote it, objections now live in ``marketing_objections``).
    """

    __tablename__ = "message_consent"
    # Senders poll for recent opt-outs by time.
    __table_args__ = (Index("ix_message_consent_updated_ms", "updated_ms"),)

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    subject: Mapped[str] = mapped_column(String(320), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class InteractionRow(Base):
    """A user's first open, click, unsubscribe or conversion for a campaign (unique per kind)."""

    __tablename__ = "message_interactions"
    __table_args__ = (
        UniqueConstraint("campaign_id", "user_key", "kind", name="uq_message_interactions_once"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(32))
    user_key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    ts_ms: Mapped[int] = mapped_column(BigInteger)

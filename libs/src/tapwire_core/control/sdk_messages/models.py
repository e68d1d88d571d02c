"""Messages waiting for a user's CleverTap SDK to fetch them: in-app popups and inbox entries.

The migration ``0017_sdk_messages`` creates the table. Messaging writes a row when a campaign's in-app or
inbox message is "sent" (queued for the user's SDK); a gateway hands it to the first SDK request of the user
that comes (``delivered_ms``), once, and later attributes the SDK's viewed and clicked events to it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.accounts.models import JSON_DOCUMENT
from tapwire_core.control.base import Base
from tapwire_core.control.messaging.models import ID


class SdkMessageRow(Base):
    """One in-app or inbox message for one user.

    ``message_key`` is the outbox row's idempotency key, so a send repeated after a crash queues one message.
    The person's user keys when it was queued (their device ids among them), the keys an SDK request may name
    them by, are its :class:`SdkMessageKeyRow` rows. ``content`` is the rendered message in a neutral shape; each SDK's answer
    builds its own from it. ``delivered_request`` names the SDK request that took it, so a retry of that
    request (its answer lost) gets it again and no other request does.
    """

    __tablename__ = "sdk_messages"
    __table_args__ = (
        Index("ix_sdk_messages_user", "account_id", "user_key", "delivered_ms"),
        # Gateways read what changed since their last read; expired rows are purged by time.
        Index("ix_sdk_messages_created", "created_ms"),
        Index("ix_sdk_messages_delivered", "delivered_ms"),
        Index("ix_sdk_messages_expires", "expires_ms"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    """``campaign`` (promotional) or ``transactional``: an objection withdraws promotional ones only."""
    user_key: Mapped[str] = mapped_column(String(255))
    message_key: Mapped[str] = mapped_column(String(64), unique=True)
    content: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    delivered_ms: Mapped[int | None] = mapped_column(BigInteger)
    delivered_request: Mapped[str | None] = mapped_column(String(64))


class SdkMessageKeyRow(Base):
    """One key an SDK request may name a message's user by; deleted with its message."""

    __tablename__ = "sdk_message_keys"
    __table_args__ = (Index("ix_sdk_message_keys_key", "account_id", "key"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("sdk_messages.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64))

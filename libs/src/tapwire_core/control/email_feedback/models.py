"""The email feedback tables. Created by the revision ``0012_email_feedback``.

Neither table holds an address: both name it by a keyed hash of its subject key (``e:<address>``) under the
deployment's identifier salt, so a leaked table cannot be read back into a mailing list.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.base import Base

# SQLite only auto-increments INTEGER PRIMARY KEY columns; BIGINT on PostgreSQL.
_ID = BigInteger().with_variant(Integer(), "sqlite")


class EmailSuppressionRow(Base):
    """An address no email goes to: it hard-bounced, complained, or soft-bounced too often. Only an operator
    lifts it (a resubscribe does not: the mailbox is gone, or its owner told the provider it is spam)."""

    __tablename__ = "email_suppressions"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class EmailFeedbackRow(Base):
    """One bounce or complaint as reported (at send, by a DSN or ARF report, or by a provider's webhook).

    ``notice_id`` is stable for one report (a provider's event id, or a hash of the report), so a report that
    arrives twice is kept once. ``detail`` is the diagnostic with the recipient's address taken out.
    """

    __tablename__ = "email_feedback"
    __table_args__ = (
        UniqueConstraint("account_id", "notice_id", name="uq_email_feedback_notice"),
        # Soft bounces are counted per address over a window; erasure finds a person's rows by address too.
        Index("ix_email_feedback_address", "account_id", "address_hash", "ts_ms"),
        Index("ix_email_feedback_user", "account_id", "user_key"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64))
    notice_id: Mapped[str] = mapped_column(String(64))
    address_hash: Mapped[str] = mapped_column(String(64))
    user_key: Mapped[str | None] = mapped_column(String(255))
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(300))
    ts_ms: Mapped[int] = mapped_column(BigInteger)

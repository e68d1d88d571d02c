"""Trigger timers: one row per firing of a behaviour-triggered campaign, from the triggering event to its message.

The migration ``0014_trigger_timers`` creates the table. A row is written by the trigger evaluator when an event
matches a live trigger, and fired by a timer runner once ``due_ms`` has come (after the campaign's delay, or its
abandonment window). ``(campaign_id, user_key, firing)`` is unique, ``firing`` being the triggering event's id, so
an event the evaluator reads twice (a replay after a crash) makes one timer.

``status``: waiting (due at ``due_ms``) → firing (claimed until ``lease_until_ms``, like an outbox row) → fired
(its outbox rows are written) | cancelled (the user did the abandonment event in time) | skipped (the
campaign's frequency rule or a stop refused it; ``detail`` says which).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.accounts.models import JSON_DOCUMENT
from tapwire_core.control.base import Base
from tapwire_core.control.messaging.models import ID


class TriggerTimerRow(Base):
    __tablename__ = "trigger_timers"
    __table_args__ = (
        UniqueConstraint("campaign_id", "user_key", "firing", name="uq_trigger_timers_firing"),
        # Claims walk waiting rows by due time, and look up expired leases of claimed rows.
        Index("ix_trigger_timers_due", "status", "due_ms"),
        # Abandonment events cancel a user's waiting rows; frequency rules count a user's fired rows.
        Index("ix_trigger_timers_user", "account_id", "user_key", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(String(64))
    user_key: Mapped[str] = mapped_column(String(255))
    firing: Mapped[str] = mapped_column(String(64))
    event: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    """The triggering event's properties, which the message's templates see as ``Event``."""
    trigger_ms: Mapped[int] = mapped_column(BigInteger)
    due_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(200))
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)

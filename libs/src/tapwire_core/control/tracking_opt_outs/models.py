"""The tracking opt-out table. Created by ``0008_tracking_opt_outs``; ``changed_at`` and ``lifted_at`` by
``0011_tracking_opt_out_changes``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.base import Base


class TrackingOptOutRow(Base):
    """One opted-out subject key of an account (hashed): a device id (``o:``) or one of the person's keys.

    Opting back in does not delete the row at once: it sets ``lifted_at``, so that gateways reading the list
    incrementally (the rows whose ``changed_at`` moved since their last read) learn of the lift too. Lifted rows
    are deleted a day later (``operations.LIFTED_KEPT``).
    """

    __tablename__ = "tracking_opt_outs"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the key was (last) listed."""
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    """When the row was last listed or lifted; always set (nullable only so the column could be added)."""
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the person opted back in; None while the opt-out holds."""

"""The tracking opt-out table. Created by the revision ``0008_tracking_opt_outs``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.base import Base


class TrackingOptOutRow(Base):
    """One opted-out subject key of an account (hashed): a device id (``o:``) or one of the person's keys."""

    __tablename__ = "tracking_opt_outs"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

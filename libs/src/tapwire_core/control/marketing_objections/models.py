"""The marketing objection table. Created by the revision ``0005_privacy_requests``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.base import Base


class MarketingObjectionRow(Base):
    """One objecting subject key of an account (hashed). A subject with several identifiers has several rows."""

    __tablename__ = "marketing_objections"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

"""The erasure ledger's control-database copy. Created by the revision ``0013_erasure_ledger``.

The warehouse keeps the other copy (``privacy_erasure_ledger``, warehouse migration 6), so that restoring either
store from a backup leaves one; ``tapwire_privacy.ledger`` writes and reads both.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.base import Base


class ErasureLedgerRow(Base):
    """One erased subject key of an account as its salted hash (``*``: the whole account), and its request."""

    __tablename__ = "privacy_erasure_ledger"

    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32))
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

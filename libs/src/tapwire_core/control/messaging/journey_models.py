"""Journeys: versioned step graphs, each user's position in them, and what happened at each step.

The migration ``0015_journeys`` creates these tables. A journey's definition is stored once per version
(``journey_versions``); a position keeps the version it entered with, so a new version applies to new entries
only. ``(journey_id, user_key, entry)`` is unique (``entry``: the triggering event's id, or ``segment`` for a
segment entry), so an entry made twice is one position. ``journey_history`` has one row per (position, step,
action): a step a position executes again after a crash adds nothing.

Position ``status``: active (its ``step`` runs at ``due_ms``) or waiting (at a wait step until ``due_ms``);
then completed (reached an exit), converted (did the goal event), or exited (``detail`` says why: an objection,
an erasure, a stopped journey). A claimed position carries ``claimed_by`` and ``lease_until_ms``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.accounts.models import JSON_DOCUMENT
from tapwire_core.control.base import Base
from tapwire_core.control.messaging.models import ID


class JourneyRow(Base):
    __tablename__ = "journeys"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    """``active`` or ``stopped``."""
    version: Mapped[int] = mapped_column(Integer)
    """The version new entries take."""
    enrolled_version: Mapped[int] = mapped_column(Integer)
    """For a segment entry, the version whose segment was enrolled (0: none yet)."""
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class JourneyVersionRow(Base):
    __tablename__ = "journey_versions"

    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class JourneyPositionRow(Base):
    __tablename__ = "journey_positions"
    __table_args__ = (
        UniqueConstraint("journey_id", "user_key", "entry", name="uq_journey_positions_entry"),
        Index("ix_journey_positions_due", "status", "due_ms"),
        Index("ix_journey_positions_user", "account_id", "user_key", "status"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[str] = mapped_column(String(64))
    user_key: Mapped[str] = mapped_column(String(255))
    entry: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    due_ms: Mapped[int] = mapped_column(BigInteger)
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    entered_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str | None] = mapped_column(String(200))


class JourneyHistoryRow(Base):
    __tablename__ = "journey_history"
    __table_args__ = (
        UniqueConstraint("position_id", "step", "action", name="uq_journey_history_once"),
        Index("ix_journey_history_journey", "journey_id", "step", "action"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    position_id: Mapped[int] = mapped_column(ForeignKey("journey_positions.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    """entered, sent, waited, branched, completed, converted, exited."""
    detail: Mapped[str | None] = mapped_column(String(200))
    ts_ms: Mapped[int] = mapped_column(BigInteger)

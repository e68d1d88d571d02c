"""Tables of the identity graph. The Alembic revision ``0002_identity_graph`` creates exactly these.

A node is one identifier of one account; ``profile_id`` names the profile (connected component) it belongs to
and ``canonical_key`` the key its profile is counted under, denormalised so a change can be told from a no-op.
Edges record every link that was asserted (and when it was undone), which is what a demerge splits along.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.base import Base
from tapwire_core.identity.keys import MAX_KEY_CHARS


class IdentityNodeRow(Base):
    __tablename__ = "identity_nodes"
    __table_args__ = (
        UniqueConstraint("account_id", "key", name="uq_identity_nodes_account_key"),
        Index("ix_identity_nodes_account_profile", "account_id", "profile_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), ForeignKey("accounts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_CHARS))
    profile_id: Mapped[int] = mapped_column(BigInteger)
    canonical_key: Mapped[str] = mapped_column(String(MAX_KEY_CHARS))
    # Version of this node's user_aliases row; only ever grows.
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdentityEdgeRow(Base):
    __tablename__ = "identity_edges"
    __table_args__ = (
        Index("ix_identity_edges_account_a", "account_id", "a_key"),
        Index("ix_identity_edges_account_b", "account_id", "b_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(64), ForeignKey("accounts.id", ondelete="CASCADE"))
    a_key: Mapped[str] = mapped_column(String(MAX_KEY_CHARS))
    b_key: Mapped[str] = mapped_column(String(MAX_KEY_CHARS))
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

"""Journeys: versioned step graphs, users' positions in them, and per-step history.

Revision ID: 0015_journeys
Revises: 0014_trigger_timers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015_journeys"
down_revision: str | None = "0014_trigger_timers"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "journeys",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("enrolled_version", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_journeys_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journeys")),
    )
    op.create_index(op.f("ix_journeys_account_id"), "journeys", ["account_id"])
    op.create_table(
        "journey_versions",
        sa.Column("journey_id", _ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journeys.id"],
            name=op.f("fk_journey_versions_journey_id_journeys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("journey_id", "version", name=op.f("pk_journey_versions")),
    )
    op.create_table(
        "journey_positions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("journey_id", _ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("user_key", sa.String(255), nullable=False),
        sa.Column("entry", sa.String(64), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("entered_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journeys.id"],
            name=op.f("fk_journey_positions_journey_id_journeys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_positions")),
        sa.UniqueConstraint("journey_id", "user_key", "entry", name="uq_journey_positions_entry"),
    )
    op.create_index("ix_journey_positions_due", "journey_positions", ["status", "due_ms"])
    op.create_index("ix_journey_positions_user", "journey_positions", ["account_id", "user_key", "status"])
    op.create_table(
        "journey_history",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("position_id", _ID, nullable=False),
        sa.Column("journey_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["position_id"],
            ["journey_positions.id"],
            name=op.f("fk_journey_history_position_id_journey_positions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_history")),
        sa.UniqueConstraint("position_id", "step", "action", name="uq_journey_history_once"),
    )
    op.create_index("ix_journey_history_journey", "journey_history", ["journey_id", "step", "action"])


def downgrade() -> None:
    op.drop_index("ix_journey_history_journey", table_name="journey_history")
    op.drop_table("journey_history")
    op.drop_index("ix_journey_positions_user", table_name="journey_positions")
    op.drop_index("ix_journey_positions_due", table_name="journey_positions")
    op.drop_table("journey_positions")
    op.drop_table("journey_versions")
    op.drop_index(op.f("ix_journeys_account_id"), table_name="journeys")
    op.drop_table("journeys")

"""Durable timers of behaviour-triggered campaigns (``trigger_timers``).

Revision ID: 0014_trigger_timers
Revises: 0013_erasure_ledger
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014_trigger_timers"
down_revision: str | None = "0013_erasure_ledger"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "trigger_timers",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("user_key", sa.String(255), nullable=False),
        sa.Column("firing", sa.String(64), nullable=False),
        sa.Column("event", _JSON, nullable=False),
        sa.Column("trigger_ms", sa.BigInteger(), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_trigger_timers_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_timers")),
        sa.UniqueConstraint("campaign_id", "user_key", "firing", name="uq_trigger_timers_firing"),
    )
    op.create_index("ix_trigger_timers_due", "trigger_timers", ["status", "due_ms"])
    op.create_index(
        "ix_trigger_timers_user", "trigger_timers", ["account_id", "user_key", "campaign_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_trigger_timers_user", table_name="trigger_timers")
    op.drop_index("ix_trigger_timers_due", table_name="trigger_timers")
    op.drop_table("trigger_timers")

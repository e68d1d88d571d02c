"""Email feedback: bounces and complaints as reported, and the suppression list they feed (hashed addresses).

Revision ID: 0012_email_feedback
Revises: 0011_tracking_opt_out_changes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_email_feedback"
down_revision: str | None = "0011_tracking_opt_out_changes"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "email_suppressions",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "address_hash", name=op.f("pk_email_suppressions")),
    )
    op.create_table(
        "email_feedback",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("notice_id", sa.String(64), nullable=False),
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("user_key", sa.String(255), nullable=True),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("detail", sa.String(300), nullable=True),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_feedback")),
        sa.UniqueConstraint("account_id", "notice_id", name="uq_email_feedback_notice"),
    )
    op.create_index("ix_email_feedback_address", "email_feedback", ["account_id", "address_hash", "ts_ms"])
    op.create_index("ix_email_feedback_user", "email_feedback", ["account_id", "user_key"])


def downgrade() -> None:
    op.drop_index("ix_email_feedback_user", table_name="email_feedback")
    op.drop_index("ix_email_feedback_address", table_name="email_feedback")
    op.drop_table("email_feedback")
    op.drop_table("email_suppressions")

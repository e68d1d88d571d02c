"""Tracking opt-outs made through CleverTap's client SDKs (``clevertap.privacy.push({optOut: true})``).

Revision ID: 0008_tracking_opt_outs
Revises: 0007_console
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_tracking_opt_outs"
down_revision: str | None = "0007_console"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "tracking_opt_outs",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key_hash", name=op.f("pk_tracking_opt_outs")),
    )


def downgrade() -> None:
    op.drop_table("tracking_opt_outs")

"""The erasure ledger: salted hashes of every erased subject key, for re-erasing after a restore.

Revision ID: 0013_erasure_ledger
Revises: 0012_email_feedback
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_erasure_ledger"
down_revision: str | None = "0012_email_feedback"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_erasure_ledger",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key_hash", name=op.f("pk_privacy_erasure_ledger")),
    )


def downgrade() -> None:
    op.drop_table("privacy_erasure_ledger")

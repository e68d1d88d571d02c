"""Tracking opt-outs followed incrementally: when each row last changed, and lifts kept for a while as marks.

Revision ID: 0011_tracking_opt_out_changes
Revises: 0010_credential_digest_secret
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_tracking_opt_out_changes"
down_revision: str | None = "0010_credential_digest_secret"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy), so that the SQL prints without a database; changed_at is nullable for
    # that reason only: every write sets it, and the rows listed before this revision get their created_at.
    op.add_column("tracking_opt_outs", sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tracking_opt_outs", sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE tracking_opt_outs SET changed_at = created_at")
    op.create_index(op.f("ix_tracking_opt_outs_changed_at"), "tracking_opt_outs", ["changed_at"])


def downgrade() -> None:
    op.execute("DELETE FROM tracking_opt_outs WHERE lifted_at IS NOT NULL")
    op.drop_index(op.f("ix_tracking_opt_outs_changed_at"), table_name="tracking_opt_outs")
    op.drop_column("tracking_opt_outs", "lifted_at")
    op.drop_column("tracking_opt_outs", "changed_at")

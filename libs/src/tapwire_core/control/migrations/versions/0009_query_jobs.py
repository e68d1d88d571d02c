"""Count jobs of the query service, answerable by any replica.

Revision ID: 0009_query_jobs
Revises: 0008_tracking_opt_outs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009_query_jobs"
down_revision: str | None = "0008_tracking_opt_outs"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "query_jobs",
        sa.Column("req_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("value", _JSON, nullable=True),
        sa.Column("error_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("retry_after", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("req_id", name=op.f("pk_query_jobs")),
    )
    op.create_index(op.f("ix_query_jobs_account_id"), "query_jobs", ["account_id"])
    op.create_index(op.f("ix_query_jobs_expires_at"), "query_jobs", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_query_jobs_expires_at"), table_name="query_jobs")
    op.drop_index(op.f("ix_query_jobs_account_id"), table_name="query_jobs")
    op.drop_table("query_jobs")

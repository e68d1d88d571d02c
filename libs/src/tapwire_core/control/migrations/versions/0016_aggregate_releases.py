"""Anonymised aggregates released beyond the customer, remembered against differencing.

Revision ID: 0016_aggregate_releases
Revises: 0015_journeys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016_aggregate_releases"
down_revision: str | None = "0015_journeys"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "aggregate_releases",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=True),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("anchor", sa.String(8), nullable=False),
        sa.Column("released", _JSON, nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aggregate_releases")),
    )
    op.create_index(op.f("ix_aggregate_releases_account_id"), "aggregate_releases", ["account_id"])
    op.create_index(op.f("ix_aggregate_releases_released_at"), "aggregate_releases", ["released_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_aggregate_releases_released_at"), table_name="aggregate_releases")
    op.drop_index(op.f("ix_aggregate_releases_account_id"), table_name="aggregate_releases")
    op.drop_table("aggregate_releases")

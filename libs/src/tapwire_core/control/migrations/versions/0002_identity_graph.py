"""The identity graph: identifier nodes per account and the links between them.

Revision ID: 0002_identity_graph
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_identity_graph"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = 320


def upgrade() -> None:
    op.create_table(
        "identity_nodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(_KEY), nullable=False),
        sa.Column("profile_id", sa.BigInteger(), nullable=False),
        sa.Column("canonical_key", sa.String(_KEY), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_identity_nodes_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_nodes")),
        sa.UniqueConstraint("account_id", "key", name=op.f("uq_identity_nodes_account_key")),
    )
    op.create_index(op.f("ix_identity_nodes_account_profile"), "identity_nodes", ["account_id", "profile_id"])
    op.create_table(
        "identity_edges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("a_key", sa.String(_KEY), nullable=False),
        sa.Column("b_key", sa.String(_KEY), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_identity_edges_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_edges")),
    )
    op.create_index(op.f("ix_identity_edges_account_a"), "identity_edges", ["account_id", "a_key"])
    op.create_index(op.f("ix_identity_edges_account_b"), "identity_edges", ["account_id", "b_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_identity_edges_account_b"), table_name="identity_edges")
    op.drop_index(op.f("ix_identity_edges_account_a"), table_name="identity_edges")
    op.drop_table("identity_edges")
    op.drop_index(op.f("ix_identity_nodes_account_profile"), table_name="identity_nodes")
    op.drop_table("identity_nodes")

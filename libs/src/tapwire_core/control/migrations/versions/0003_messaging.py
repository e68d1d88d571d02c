"""Messaging: campaigns, the delivery outbox, consent (suppressions) and message interactions.

Revision ID: 0003_messaging
Revises: 0002_identity_graph
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_messaging"
down_revision: str | None = "0002_identity_graph"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "message_consent",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("subject_kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_id", "subject_kind", "subject", "channel", name=op.f("pk_message_consent")
        ),
    )
    op.create_index("ix_message_consent_updated_ms", "message_consent", ["updated_ms"])
    op.create_table(
        "campaigns",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("audience", _JSON, nullable=False),
        sa.Column("variants", _JSON, nullable=False),
        sa.Column("rules", _JSON, nullable=False),
        sa.Column("scheduled_ms", sa.BigInteger(), nullable=False),
        sa.Column("cutoff_ms", sa.BigInteger(), nullable=False),
        sa.Column("filled", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("audience_size", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("expired", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_campaigns_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_account_id"), "campaigns", ["account_id"])
    op.create_index(op.f("ix_campaigns_status"), "campaigns", ["status"])
    op.create_table(
        "message_interactions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("user_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_message_interactions_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_interactions")),
        sa.UniqueConstraint("campaign_id", "user_key", "kind", name=op.f("uq_message_interactions_once")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("user_key", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(1024), nullable=False),
        sa.Column("platform", sa.String(16), nullable=True),
        sa.Column("context", _JSON, nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("provider_id", sa.String(255), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("sent_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_outbox_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("campaign_id", "variant", "user_key", "channel", name=op.f("uq_outbox_key")),
    )
    op.create_index("ix_outbox_campaign_status", "outbox", ["campaign_id", "status"])
    op.create_index("ix_outbox_claim", "outbox", ["status", "priority", "id"])
    op.create_index("ix_outbox_lease", "outbox", ["status", "lease_until_ms"])
    op.create_index("ix_outbox_recent", "outbox", ["account_id", "user_key", "channel", "sent_ms"])


def downgrade() -> None:
    op.drop_index("ix_outbox_recent", table_name="outbox")
    op.drop_index("ix_outbox_lease", table_name="outbox")
    op.drop_index("ix_outbox_claim", table_name="outbox")
    op.drop_index("ix_outbox_campaign_status", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("message_interactions")
    op.drop_index(op.f("ix_campaigns_status"), table_name="campaigns")
    op.drop_index(op.f("ix_campaigns_account_id"), table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_index("ix_message_consent_updated_ms", table_name="message_consent")
    op.drop_table("message_consent")

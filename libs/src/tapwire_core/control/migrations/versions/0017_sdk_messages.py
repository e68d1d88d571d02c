"""In-app and inbox messages waiting for users' CleverTap SDKs (``sdk_messages``, and ``sdk_message_keys``: the
keys an SDK request may name each message's user by).

Revision ID: 0017_sdk_messages
Revises: 0015_journeys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017_sdk_messages"
down_revision: str | None = "0016_aggregate_releases"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sdk_messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_key", sa.String(255), nullable=False),
        sa.Column("message_key", sa.String(64), nullable=False),
        sa.Column("content", _JSON, nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=True),
        sa.Column("delivered_request", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_sdk_messages_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sdk_messages")),
        sa.UniqueConstraint("message_key", name=op.f("uq_sdk_messages_message_key")),
    )
    op.create_index("ix_sdk_messages_user", "sdk_messages", ["account_id", "user_key", "delivered_ms"])
    op.create_index("ix_sdk_messages_created", "sdk_messages", ["created_ms"])
    op.create_index("ix_sdk_messages_delivered", "sdk_messages", ["delivered_ms"])
    op.create_index("ix_sdk_messages_expires", "sdk_messages", ["expires_ms"])
    op.create_table(
        "sdk_message_keys",
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["sdk_messages.id"],
            name=op.f("fk_sdk_message_keys_message_id_sdk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "key", name=op.f("pk_sdk_message_keys")),
    )
    op.create_index("ix_sdk_message_keys_key", "sdk_message_keys", ["account_id", "key"])


def downgrade() -> None:
    op.drop_index("ix_sdk_message_keys_key", table_name="sdk_message_keys")
    op.drop_table("sdk_message_keys")
    for index in ("ix_sdk_messages_expires", "ix_sdk_messages_delivered", "ix_sdk_messages_created"):
        op.drop_index(index, table_name="sdk_messages")
    op.drop_index("ix_sdk_messages_user", table_name="sdk_messages")
    op.drop_table("sdk_messages")

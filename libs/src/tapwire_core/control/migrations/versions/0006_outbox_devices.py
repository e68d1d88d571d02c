"""Outbox rows per push device: the ``device`` column joins the outbox's idempotency key.

A push campaign sent to all of a user's devices writes one row per device token; every other row keeps an empty
``device``, so existing rows and their idempotency keys are unchanged.

Revision ID: 0006_outbox_devices
Revises: 0005_privacy_requests
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_outbox_devices"
down_revision: str | None = "0005_privacy_requests"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = ["campaign_id", "variant", "user_key", "channel"]
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _outbox(*, with_device: bool) -> sa.Table:
    """The outbox as it stands before this step (or after it): SQLite batch mode copies the table from this
    definition instead of reflecting it, which also lets ``--sql`` print the migration without a database."""
    key = [*_KEY, "device"] if with_device else _KEY
    device = [sa.Column("device", sa.String(32), server_default=sa.text("''"), nullable=False)]
    return sa.Table(
        "outbox",
        sa.MetaData(),
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("user_key", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        *(device if with_device else []),
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
            ["campaign_id"], ["campaigns.id"], name="fk_outbox_campaign_id_campaigns", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint(*key, name="uq_outbox_key"),
        sa.Index("ix_outbox_campaign_status", "campaign_id", "status"),
        sa.Index("ix_outbox_claim", "status", "priority", "id"),
        sa.Index("ix_outbox_lease", "status", "lease_until_ms"),
        sa.Index("ix_outbox_recent", "account_id", "user_key", "channel", "sent_ms"),
    )


def upgrade() -> None:
    with op.batch_alter_table("outbox", copy_from=_outbox(with_device=False)) as batch:
        batch.add_column(sa.Column("device", sa.String(32), server_default=sa.text("''"), nullable=False))
        batch.drop_constraint(op.f("uq_outbox_key"), type_="unique")
        batch.create_unique_constraint(op.f("uq_outbox_key"), [*_KEY, "device"])


def downgrade() -> None:
    # Rows of one user's other devices would break the narrower key: keep the first row of each key.
    op.execute(
        "DELETE FROM outbox WHERE device <> '' AND id NOT IN "
        "(SELECT min(id) FROM outbox GROUP BY campaign_id, variant, user_key, channel)"
    )
    with op.batch_alter_table("outbox", copy_from=_outbox(with_device=True)) as batch:
        batch.drop_constraint(op.f("uq_outbox_key"), type_="unique")
        batch.create_unique_constraint(op.f("uq_outbox_key"), _KEY)
        batch.drop_column("device")

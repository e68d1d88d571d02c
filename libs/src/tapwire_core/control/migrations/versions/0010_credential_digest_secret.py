"""Keyed credential lookup digests: ``credentials.digest_secret_id`` names the credential secret of each digest.

Rows written before this revision keep their unkeyed SHA-256 digest (NULL ``digest_secret_id``): an HMAC cannot be
computed here without the secrets, so each live credential is re-keyed by the services the first time it is
verified. Revoked ones will never be verified again; their digest is replaced by ``retired-<id>`` now, so no copy
of the table taken from here on offers their secrets to offline guessing.

Revision ID: 0010_credential_digest_secret
Revises: 0009_query_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_credential_digest_secret"
down_revision: str | None = "0009_query_jobs"
branch_labels: str | None = None
depends_on: str | None = None

_credentials = sa.table(
    "credentials",
    sa.column("id", sa.Integer()),
    sa.column("lookup_digest", sa.String(64)),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # A nullable column without a default: no table rewrite on PostgreSQL, a plain ADD COLUMN on SQLite.
    op.add_column("credentials", sa.Column("digest_secret_id", sa.String(16), nullable=True))
    op.execute(
        _credentials.update()
        .where(_credentials.c.revoked_at.is_not(None))
        .values(lookup_digest=sa.literal("retired-") + sa.cast(_credentials.c.id, sa.String))
    )


def downgrade() -> None:
    # Digests re-keyed since the upgrade stay as they are: an older release cannot find those credentials (it
    # looks up the unkeyed digest) until the upgrade is applied again or they are issued anew.
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("digest_secret_id")

"""Privacy requests, their working set and audit trail, the suppression list, notices, keys, marketing objections.

Revision ID: 0005_privacy_requests
Revises: 0004_segments
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_privacy_requests"
down_revision: str | None = "0004_segments"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_EMPTY = sa.text("'{}'")


def _at(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("jurisdiction", sa.String(8), nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=True),
        _at("received_at", nullable=False),
        _at("acknowledge_by"),
        _at("due_at", nullable=False),
        _at("extension_notice_by", nullable=False),
        _at("extended_until"),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        _at("confirmed_at"),
        _at("completed_at"),
        sa.Column("denial_basis", sa.String(500), nullable=True),
        sa.Column("progress", _JSON, server_default=_EMPTY, nullable=False),
        sa.Column("verification", _JSON, nullable=True),
        _at("next_run_at"),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        _at("lease_until"),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _at("export_expires_at"),
        _at("export_erased_at"),
        _at("retain_until", nullable=False),
        sa.CheckConstraint(
            "channel IN ('api', 'clevertap', 'direct')", name=op.f("ck_privacy_requests_channel")
        ),
        sa.CheckConstraint("scope IN ('subject', 'tenant')", name=op.f("ck_privacy_requests_scope")),
        sa.CheckConstraint(
            "status IN ('referred', 'pending', 'in_progress', 'awaiting_sweep', 'completed', 'denied', 'failed')",
            name=op.f("ck_privacy_requests_status"),
        ),
        sa.CheckConstraint(
            "type IN ('erasure', 'export', 'rectify', 'objection')", name=op.f("ck_privacy_requests_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index(
        "ix_privacy_requests_account_id_received_at", "privacy_requests", ["account_id", "received_at"]
    )
    op.create_index(op.f("ix_privacy_requests_retain_until"), "privacy_requests", ["retain_until"])
    op.create_index("ix_privacy_requests_status_next_run_at", "privacy_requests", ["status", "next_run_at"])
    op.create_table(
        "privacy_request_subjects",
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("identifiers", _JSON, nullable=False),
        sa.Column("closure", _JSON, nullable=True),
        sa.Column("payload", _JSON, server_default=_EMPTY, nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["privacy_requests.id"],
            name=op.f("fk_privacy_request_subjects_request_id_privacy_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_privacy_request_subjects")),
    )
    op.create_table(
        "privacy_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(32), nullable=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("action", sa.String(48), nullable=False),
        sa.Column("store", sa.String(64), nullable=True),
        sa.Column("detail", _JSON, server_default=_EMPTY, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_audit")),
    )
    op.create_index(op.f("ix_privacy_audit_request_id"), "privacy_audit", ["request_id"])
    _forbid_audit_updates()
    op.create_table(
        "privacy_suppressions",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        _at("created_at", nullable=False),
        _at("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key_hash", name=op.f("pk_privacy_suppressions")),
    )
    op.create_index(op.f("ix_privacy_suppressions_expires_at"), "privacy_suppressions", ["expires_at"])
    op.create_table(
        "privacy_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", _JSON, server_default=_EMPTY, nullable=False),
        _at("created_at", nullable=False),
        _at("delivered_at"),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _at("next_attempt_at"),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_notices")),
    )
    op.create_index(op.f("ix_privacy_notices_next_attempt_at"), "privacy_notices", ["next_attempt_at"])
    op.create_index(op.f("ix_privacy_notices_request_id"), "privacy_notices", ["request_id"])
    op.create_table(
        "privacy_keys",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_privacy_keys")),
    )
    op.create_table(
        "marketing_objections",
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=True),
        _at("created_at", nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key_hash", name=op.f("pk_marketing_objections")),
    )


def _forbid_audit_updates() -> None:
    """The audit trail is append-only: the database itself refuses to change a row (deleting rows past the
    retention period stays possible)."""
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION privacy_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'privacy_audit is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER privacy_audit_append_only BEFORE UPDATE ON privacy_audit "
            "FOR EACH ROW EXECUTE FUNCTION privacy_audit_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER privacy_audit_append_only BEFORE UPDATE ON privacy_audit "
            "BEGIN SELECT RAISE(ABORT, 'privacy_audit is append-only'); END"
        )


def downgrade() -> None:
    op.drop_table("marketing_objections")
    op.drop_table("privacy_keys")
    op.drop_index(op.f("ix_privacy_notices_request_id"), table_name="privacy_notices")
    op.drop_index(op.f("ix_privacy_notices_next_attempt_at"), table_name="privacy_notices")
    op.drop_table("privacy_notices")
    op.drop_index(op.f("ix_privacy_suppressions_expires_at"), table_name="privacy_suppressions")
    op.drop_table("privacy_suppressions")
    op.drop_index(op.f("ix_privacy_audit_request_id"), table_name="privacy_audit")
    op.drop_table("privacy_audit")
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS privacy_audit_append_only()")
    op.drop_table("privacy_request_subjects")
    op.drop_index("ix_privacy_requests_status_next_run_at", table_name="privacy_requests")
    op.drop_index(op.f("ix_privacy_requests_retain_until"), table_name="privacy_requests")
    op.drop_index("ix_privacy_requests_account_id_received_at", table_name="privacy_requests")
    op.drop_table("privacy_requests")

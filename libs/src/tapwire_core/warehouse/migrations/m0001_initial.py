"""The initial schema: events, profile properties and operators, and the per-user profile summary."""

from __future__ import annotations

from tapwire_core.warehouse import schema
from tapwire_core.warehouse.migrations.operations import CreateTable, DropTable, Migration

MIGRATION = Migration(
    version=1,
    name="initial",
    blocking=False,
    forward=(
        # A redelivered event has the same sorting key (event id last), so merges and FINAL keep one row.
        CreateTable(
            name=schema.EVENTS,
            columns=schema.EVENT_COLUMNS,
            engine="ReplacingMergeTree",
            partition_by="toYYYYMM(ts)",
            order_by="(account_id, name, toDate(ts), user_key, event_id)",
            indexes=(
                "INDEX idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 4",
                "INDEX idx_user_key user_key TYPE bloom_filter(0.01) GRANULARITY 4",
            ),
        ),
        # One row per (user, property); the version column makes the latest ts win.
        CreateTable(
            name=schema.PROFILE_PROPS,
            columns=schema.PROFILE_PROP_COLUMNS,
            engine="ReplacingMergeTree",
            engine_args=("ts",),
            order_by="(account_id, user_key, key)",
        ),
        # Operators are kept, not applied: a redelivered one has the same key and collapses.
        CreateTable(
            name=schema.PROFILE_OPS,
            columns=schema.PROFILE_OP_COLUMNS,
            engine="ReplacingMergeTree",
            order_by="(account_id, user_key, key, ts, event_id)",
        ),
        # anyLast skips NULLs, so a batch that did not see an identifier leaves the known one in place.
        CreateTable(
            name=schema.PROFILES,
            columns=schema.PROFILE_COLUMNS,
            engine="AggregatingMergeTree",
            order_by="(account_id, user_key)",
        ),
    ),
    backward=(
        DropTable(schema.PROFILES),
        DropTable(schema.PROFILE_OPS),
        DropTable(schema.PROFILE_PROPS),
        DropTable(schema.EVENTS),
    ),
)

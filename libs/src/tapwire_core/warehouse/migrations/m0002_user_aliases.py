"""The identity graph's projection: merged-away user keys and the key each now counts as."""

from __future__ import annotations

from tapwire_core.warehouse import schema
from tapwire_core.warehouse.migrations.operations import CreateTable, DropTable, Migration

MIGRATION = Migration(
    version=2,
    name="user_aliases",
    blocking=False,
    forward=(
        CreateTable(
            name=schema.USER_ALIASES,
            columns=schema.USER_ALIAS_COLUMNS,
            engine="ReplacingMergeTree",
            engine_args=("version",),
            order_by="(account_id, alias_key)",
            # An alias row lives on the shard that holds the alias's own events.
            sharding_key="cityHash64(account_id, alias_key)",
        ),
    ),
    backward=(DropTable(schema.USER_ALIASES),),
)

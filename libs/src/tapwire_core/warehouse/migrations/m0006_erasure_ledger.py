"""The erasure ledger's warehouse copy: salted hashes of erased subject keys (``tapwire_privacy.ledger``)."""

from __future__ import annotations

from tapwire_core.warehouse import schema
from tapwire_core.warehouse.migrations.operations import CreateTable, DropTable, Migration

MIGRATION = Migration(
    version=6,
    name="erasure_ledger",
    blocking=False,
    forward=(
        CreateTable(
            name=schema.ERASURE_LEDGER,
            columns=schema.ERASURE_LEDGER_COLUMNS,
            engine="ReplacingMergeTree",
            engine_args=(),
            order_by="(account_id, key_hash)",
            sharding_key="cityHash64(account_id, key_hash)",
        ),
    ),
    backward=(DropTable(schema.ERASURE_LEDGER),),
)

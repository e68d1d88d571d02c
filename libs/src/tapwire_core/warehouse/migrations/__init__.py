"""Versioned, cluster-aware warehouse schema migrations (see ``runner`` for the rules)."""

from tapwire_core.warehouse.migrations.operations import (
    AddColumn,
    CreateDatabase,
    CreateTable,
    DropColumn,
    DropTable,
    Migration,
    ModifyColumn,
    Operation,
    Target,
)
from tapwire_core.warehouse.migrations.runner import (
    BlockingMigrationPending,
    MigrationError,
    applied_states,
    checksum,
    label,
    migrate,
    migrations,
    plan,
    rollback,
    schema_is_current,
    schema_version,
)

__all__ = [
    "AddColumn",
    "BlockingMigrationPending",
    "CreateDatabase",
    "CreateTable",
    "DropColumn",
    "DropTable",
    "Migration",
    "MigrationError",
    "ModifyColumn",
    "Operation",
    "Target",
    "applied_states",
    "checksum",
    "label",
    "migrate",
    "migrations",
    "plan",
    "rollback",
    "schema_is_current",
    "schema_version",
]

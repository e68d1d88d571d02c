"""Applying, reverting and planning warehouse migrations; the ``tapwire_migrations`` status table.

Migrations are the ``mNNNN_<name>.py`` modules of this package, each defining ``MIGRATION``; versions run
1, 2, 3 ... without gaps. The status table holds one row per state change (version, name, applied_at,
checksum, applied); the latest row per version wins, so re-running after a crash, or two processes starting
at once, only adds rows that say the same thing. Every operation is idempotent, so a migration interrupted
half way is simply applied again.

A ``blocking`` migration (one that rewrites data) is never applied implicitly: ``migrate`` applies what comes
before it and raises ``BlockingMigrationPending`` unless ``allow_blocking=True``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import logging
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from typing import Final

from tapwire_core.warehouse import schema
from tapwire_core.warehouse.base import Warehouse, WarehouseError
from tapwire_core.warehouse.migrations.operations import CreateDatabase, CreateTable, Migration, Target

log = logging.getLogger(__name__)

_MODULE_NAME: Final = re.compile(r"^m(\d{4})_[a-z0-9_]+$")
STATUS_COLUMNS: Final = ("version", "name", "applied_at", "checksum", "applied")

STATUS_TABLE: Final = CreateTable(
    name=schema.MIGRATIONS,
    columns=(
        ("version", "UInt32"),
        ("name", "String"),
        ("applied_at", schema.UTC_MS),
        ("checksum", "String"),
        ("applied", "UInt8"),
    ),
    engine="ReplacingMergeTree",
    engine_args=("applied_at",),
    order_by="version",
    # One status log for the whole cluster: replicated to every node, never sharded.
    distributed=False,
)


class MigrationError(WarehouseError):
    """The migration set or the recorded state is inconsistent."""


class BlockingMigrationPending(MigrationError):
    """A blocking migration is next; it runs only when asked for explicitly."""


@dataclass(frozen=True)
class AppliedState:
    version: int
    name: str
    checksum: str


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration of this package, in version order. Raises MigrationError on gaps or mismatches."""
    package = importlib.import_module(__package__ or "tapwire_core.warehouse.migrations")
    found: list[Migration] = []
    for info in pkgutil.iter_modules(package.__path__):
        matched = _MODULE_NAME.match(info.name)
        if matched is None:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        migration = getattr(module, "MIGRATION", None)
        if not isinstance(migration, Migration) or migration.version != int(matched.group(1)):
            raise MigrationError(f"{info.name} must define MIGRATION with version {int(matched.group(1))}")
        found.append(migration)
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must run 1..n without gaps: {[m.version for m in found]}")
    return tuple(found)


def label(migration: Migration) -> str:
    return f"{migration.version:04d}_{migration.name}"


def checksum(migration: Migration) -> str:
    """Fingerprint of what the migration does, independent of database and cluster names."""
    text = "\n".join(
        [*migration.forward_sql(Target("db")), "--", *migration.forward_sql(Target("db", "cluster"))]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(cluster: str | None = None, *, database: str = "default", after_version: int = 0) -> list[str]:
    """Dry run: the statements ``migrate`` would run on an empty database (or past ``after_version``)."""
    target = Target(database, cluster)
    statements = _bootstrap(target)
    for migration in migrations():
        if migration.version > after_version:
            statements.extend(migration.forward_sql(target))
    return statements


async def applied_states(warehouse: Warehouse) -> dict[int, AppliedState]:
    """Versions currently applied (latest status row per version says applied); empty without a table."""
    exists = await warehouse.query(
        "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = {table:String}",
        {"table": schema.MIGRATIONS},
    )
    if not exists or int(exists[0]["n"]) == 0:
        return {}
    rows = await warehouse.query(
        f"SELECT version, argMax(name, applied_at) AS name, argMax(checksum, applied_at) AS checksum, "
        f"argMax(applied, applied_at) AS applied FROM {schema.MIGRATIONS} GROUP BY version ORDER BY version"
    )
    return {
        int(row["version"]): AppliedState(int(row["version"]), str(row["name"]), str(row["checksum"]))
        for row in rows
        if int(row["applied"]) == 1
    }


async def schema_version(warehouse: Warehouse) -> int:
    """The highest version applied with every earlier one applied too; 0 for an empty database."""
    applied = await applied_states(warehouse)
    version = 0
    while version + 1 in applied:
        version += 1
    return version


async def schema_is_current(warehouse: Warehouse) -> bool:
    """True when every known migration is applied (what ``/readyz`` reports)."""
    return await schema_version(warehouse) == len(migrations())


async def migrate(
    warehouse: Warehouse, *, cluster: str | None, allow_blocking: bool = False, dry_run: bool = False
) -> list[str]:
    """Apply pending migrations in order; returns their labels (``0001_initial``, ...).

    With ``dry_run`` nothing is executed and the statements that would run are returned instead. Raises
    ``BlockingMigrationPending`` before a blocking migration unless ``allow_blocking``; ``WarehouseError`` /
    ``WarehouseUnavailable`` from the warehouse propagate (re-running afterwards is safe).
    """
    target = Target(warehouse.database, cluster)
    applied = await applied_states(warehouse)
    _warn_on_changed(applied)
    pending = [m for m in migrations() if m.version not in applied]
    if dry_run:
        statements = [] if applied else _bootstrap(target)
        for migration in pending:
            statements.extend(migration.forward_sql(target))
        return statements
    if not pending:
        # Nothing to do, and no DDL sent: services whose ClickHouse account may not create (the query
        # service's is read-only) start against a schema the migration job brought up to date.
        return []
    for statement in _bootstrap(target):
        await warehouse.command(statement)
    done: list[str] = []
    for migration in pending:
        if migration.blocking and not allow_blocking:
            raise BlockingMigrationPending(f"migration {label(migration)} is blocking; apply it explicitly")
        log.info("applying warehouse migration", extra={"migration": label(migration)})
        for statement in migration.forward_sql(target):
            await warehouse.command(statement)
        await _record(warehouse, migration, applied=True)
        done.append(label(migration))
    return done


async def rollback(warehouse: Warehouse, *, cluster: str | None, to_version: int) -> list[str]:
    """Revert applied migrations above ``to_version``, newest first; returns their labels."""
    target = Target(warehouse.database, cluster)
    applied = await applied_states(warehouse)
    reverted: list[str] = []
    for migration in reversed(migrations()):
        if migration.version <= to_version or migration.version not in applied:
            continue
        log.info("reverting warehouse migration", extra={"migration": label(migration)})
        for statement in migration.backward_sql(target):
            await warehouse.command(statement)
        await _record(warehouse, migration, applied=False)
        reverted.append(label(migration))
    return reverted


def _bootstrap(target: Target) -> list[str]:
    """The database on every node (cluster only) and the status table."""
    return CreateDatabase().render(target) + STATUS_TABLE.render(target)


async def _record(warehouse: Warehouse, migration: Migration, *, applied: bool) -> None:
    row = (migration.version, migration.name, dt.datetime.now(dt.UTC), checksum(migration), int(applied))
    await warehouse.insert(schema.MIGRATIONS, STATUS_COLUMNS, [row])


def _warn_on_changed(applied: dict[int, AppliedState]) -> None:
    for migration in migrations():
        state = applied.get(migration.version)
        if state is not None and state.checksum != checksum(migration):
            log.warning(
                "applied warehouse migration differs from its module",
                extra={"migration": label(migration), "recorded": state.checksum, "now": checksum(migration)},
            )

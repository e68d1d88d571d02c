"""Schema operations and how each renders for one node or for a cluster.

Every rendered statement is idempotent (``IF NOT EXISTS`` / ``IF EXISTS``), so a migration that stopped half
way re-runs cleanly. On a cluster a table is two objects: ``<name>_local``, a ``Replicated*MergeTree`` on
every node (created ``ON CLUSTER``), and ``<name>``, a ``Distributed`` table over it, so readers and writers
always use the public name.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from tapwire_core.warehouse.connect import checked_identifier
from tapwire_core.warehouse.schema import SHARDING_KEY


@dataclass(frozen=True)
class Target:
    """Where statements go: a database, on one node (``cluster=None``) or on every node of a cluster."""

    database: str
    cluster: str | None = None

    def __post_init__(self) -> None:
        checked_identifier(self.database)
        if self.cluster is not None:
            checked_identifier(self.cluster)

    def on_cluster(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    def local_name(self, table: str) -> str:
        """The table that stores rows: the public name on one node, ``<table>_local`` on a cluster."""
        return f"{table}_local" if self.cluster else table

    def qualified(self, table: str) -> str:
        return f"{self.database}.{table}"


class Operation(abc.ABC):
    """One schema change. ``render`` returns the statements for ``target`` in execution order."""

    @abc.abstractmethod
    def render(self, target: Target) -> list[str]: ...


@dataclass(frozen=True)
class CreateTable(Operation):
    """A MergeTree-family table. ``engine`` is the single-node engine name (``ReplacingMergeTree``, ...)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    engine: str
    order_by: str
    engine_args: tuple[str, ...] = ()
    partition_by: str | None = None
    indexes: tuple[str, ...] = ()
    sharding_key: str = SHARDING_KEY
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        body = ",\n    ".join([f"{name} {kind}" for name, kind in self.columns] + list(self.indexes))
        storage = target.local_name(self.name) if self.distributed else self.name
        if target.cluster:
            path = (
                f"'/clickhouse/tables/{{shard}}/{{database}}/{storage}'"
                if self.distributed
                else f"'/clickhouse/tables/all/{{database}}/{storage}'"
            )
            args = ", ".join((path, "'{replica}'", *self.engine_args))
            engine = f"Replicated{self.engine}({args})"
        else:
            engine = f"{self.engine}({', '.join(self.engine_args)})"
        clauses = [f"ENGINE = {engine}"]
        if self.partition_by:
            clauses.append(f"PARTITION BY {self.partition_by}")
        clauses.append(f"ORDER BY {self.order_by}")
        statements = [
            f"CREATE TABLE IF NOT EXISTS {target.qualified(storage)}{target.on_cluster()}\n"
            f"(\n    {body}\n)\n" + "\n".join(clauses)
        ]
        if target.cluster and self.distributed:
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {target.qualified(self.name)}{target.on_cluster()}"
                f" AS {target.qualified(storage)}\n"
                f"ENGINE = Distributed({target.cluster}, {target.database}, {storage}, {self.sharding_key})"
            )
        return statements


@dataclass(frozen=True)
class CreateDatabase(Operation):
    """The database itself; only needed on a cluster, where every node must have it before its tables."""

    def render(self, target: Target) -> list[str]:
        if not target.cluster:
            return []
        return [f"CREATE DATABASE IF NOT EXISTS {target.database}{target.on_cluster()}"]


@dataclass(frozen=True)
class DropTable(Operation):
    """Drops a table created by ``CreateTable`` (both objects on a cluster, public name first)."""

    name: str
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        names = [self.name]
        if target.cluster and self.distributed:
            names.append(target.local_name(self.name))
        return [f"DROP TABLE IF EXISTS {target.qualified(name)}{target.on_cluster()} SYNC" for name in names]


@dataclass(frozen=True)
class AddColumn(Operation):
    """Adds a column to the storage table and, on a cluster, to the Distributed table in front of it."""

    table: str
    column: str
    kind: str
    after: str | None = None
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        position = f" AFTER {self.after}" if self.after else ""
        return [
            f"ALTER TABLE {target.qualified(name)}{target.on_cluster()} "
            f"ADD COLUMN IF NOT EXISTS {self.column} {self.kind}{position}"
            for name in _storage_first(self.table, target, self.distributed)
        ]


@dataclass(frozen=True)
class ModifyColumn(Operation):
    """Redefines an existing column (type, or its DEFAULT / MATERIALIZED expression) on the storage table and,
    on a cluster, on the Distributed table in front of it. Changing only the expression rewrites no data:
    parts already written keep their stored values."""

    table: str
    column: str
    kind: str
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        return [
            f"ALTER TABLE {target.qualified(name)}{target.on_cluster()} MODIFY COLUMN IF EXISTS {self.column} {self.kind}"
            for name in _storage_first(self.table, target, self.distributed)
        ]


@dataclass(frozen=True)
class DropColumn(Operation):
    table: str
    column: str
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        # The Distributed table goes first so readers never see a column its storage lacks.
        return [
            f"ALTER TABLE {target.qualified(name)}{target.on_cluster()} DROP COLUMN IF EXISTS {self.column}"
            for name in reversed(_storage_first(self.table, target, self.distributed))
        ]


@dataclass(frozen=True)
class AddIndex(Operation):
    """A data-skipping index on the storage table (a Distributed table holds no data, so no index). New parts
    get it as they are written; ``MaterializeIndex`` builds it for the parts already there."""

    table: str
    name: str
    expression: str
    kind: str
    granularity: int = 1
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        checked_identifier(self.name)
        storage = target.local_name(self.table) if self.distributed else self.table
        return [
            f"ALTER TABLE {target.qualified(storage)}{target.on_cluster()} ADD INDEX IF NOT EXISTS {self.name} "
            f"{self.expression} TYPE {self.kind} GRANULARITY {self.granularity}"
        ]


@dataclass(frozen=True)
class MaterializeIndex(Operation):
    """Builds an index for the parts written before it existed. A mutation that writes only the index's own
    files beside each part (no column is rewritten) and runs in the background: until a part has the index,
    queries read that part whole, as before, so answers never change."""

    table: str
    name: str
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        checked_identifier(self.name)
        storage = target.local_name(self.table) if self.distributed else self.table
        return [
            f"ALTER TABLE {target.qualified(storage)}{target.on_cluster()} MATERIALIZE INDEX IF EXISTS {self.name}"
        ]


@dataclass(frozen=True)
class DropIndex(Operation):
    table: str
    name: str
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        checked_identifier(self.name)
        storage = target.local_name(self.table) if self.distributed else self.table
        return [
            f"ALTER TABLE {target.qualified(storage)}{target.on_cluster()} DROP INDEX IF EXISTS {self.name}"
        ]


@dataclass(frozen=True)
class SetTableSettings(Operation):
    """MergeTree settings of the storage table (``ALTER TABLE … MODIFY SETTING``): metadata only. ``settings``
    holds names and their values as SQL literals."""

    table: str
    settings: tuple[tuple[str, str], ...]
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        assignments = ", ".join(f"{checked_identifier(name)} = {value}" for name, value in self.settings)
        storage = target.local_name(self.table) if self.distributed else self.table
        return [f"ALTER TABLE {target.qualified(storage)}{target.on_cluster()} MODIFY SETTING {assignments}"]


@dataclass(frozen=True)
class ResetTableSettings(Operation):
    """Back to the server's defaults for the named settings of the storage table."""

    table: str
    names: tuple[str, ...]
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        names = ", ".join(checked_identifier(name) for name in self.names)
        storage = target.local_name(self.table) if self.distributed else self.table
        return [f"ALTER TABLE {target.qualified(storage)}{target.on_cluster()} RESET SETTING {names}"]


@dataclass(frozen=True)
class AddProjection(Operation):
    """A projection on the storage table: a second copy of ``columns`` inside every part, sorted by
    ``order_by``, that the server reads instead of the part when that reads fewer granules. New parts get it as
    they are written; ``MaterializeProjection`` builds it for the parts already there."""

    table: str
    name: str
    columns: tuple[str, ...]
    order_by: str
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        checked_identifier(self.name)
        selected = ", ".join(checked_identifier(column) for column in self.columns)
        storage = target.local_name(self.table) if self.distributed else self.table
        return [
            f"ALTER TABLE {target.qualified(storage)}{target.on_cluster()} ADD PROJECTION IF NOT EXISTS "
            f"{self.name} (SELECT {selected} ORDER BY {self.order_by})"
        ]


@dataclass(frozen=True)
class MaterializeProjection(Operation):
    """Builds a projection for the parts written before it existed: a background mutation that writes the
    projection's files beside each part (no column of the part is rewritten). Until a part has it, queries read
    that part itself, so answers never change. The statement returns at once on every engine (chDB waits for
    mutations by default), so a start that upgrades a large table is not held up by the build."""

    table: str
    name: str
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        checked_identifier(self.name)
        storage = target.local_name(self.table) if self.distributed else self.table
        return [
            f"ALTER TABLE {target.qualified(storage)}{target.on_cluster()} MATERIALIZE PROJECTION IF EXISTS {self.name}"
            " SETTINGS mutations_sync = 0"
        ]


@dataclass(frozen=True)
class DropProjection(Operation):
    table: str
    name: str
    distributed: bool = True

    def render(self, target: Target) -> list[str]:
        checked_identifier(self.name)
        storage = target.local_name(self.table) if self.distributed else self.table
        return [
            f"ALTER TABLE {target.qualified(storage)}{target.on_cluster()} DROP PROJECTION IF EXISTS {self.name}"
        ]


def _storage_first(table: str, target: Target, distributed: bool) -> list[str]:
    if target.cluster and distributed:
        return [target.local_name(table), table]
    return [table]


@dataclass(frozen=True)
class Migration:
    """A numbered schema step. ``blocking`` marks one that rewrites data and is never applied implicitly."""

    version: int
    name: str
    forward: tuple[Operation, ...]
    backward: tuple[Operation, ...]
    blocking: bool = False
    description: str = field(default="", compare=False)

    def forward_sql(self, target: Target) -> list[str]:
        return [sql for op in self.forward for sql in op.render(target)]

    def backward_sql(self, target: Target) -> list[str]:
        return [sql for op in self.backward for sql in op.render(target)]

"""The tables that exist, derived from the schemas themselves (never a hand-kept list).

Warehouse tables are folded from the migration operations (``CreateTable`` / ``AddColumn`` / ``DropColumn`` /
``DropTable`` in version order), and so are their projections (copies of a table's columns inside its parts); control-plane tables come from the SQLAlchemy metadata, which the control
store's contract test proves equal to what the Alembic revisions create. The handler registry and the data
inventory are both checked against these lists, so a new table without a privacy decision fails the tests.
"""

from __future__ import annotations

from functools import cache

import tapwire_core.control.models  # noqa: F401  (registers every control-plane table on the metadata)
from tapwire_core.control.base import Base
from tapwire_core.warehouse import schema
from tapwire_core.warehouse.migrations import (
    AddColumn,
    AddProjection,
    CreateTable,
    DropColumn,
    DropProjection,
    DropTable,
    migrations,
)

Columns = tuple[tuple[str, str], ...]


@cache
def warehouse_tables() -> dict[str, Columns]:
    """Every warehouse table after all migrations, with its columns (name, type); the status table excluded."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for migration in migrations():
        for op in migration.forward:
            if isinstance(op, CreateTable):
                tables[op.name] = list(op.columns)
            elif isinstance(op, DropTable):
                tables.pop(op.name, None)
            elif isinstance(op, AddColumn) and op.table in tables:
                tables[op.table].append((op.column, op.kind))
            elif isinstance(op, DropColumn) and op.table in tables:
                tables[op.table] = [c for c in tables[op.table] if c[0] != op.column]
    tables.pop(schema.MIGRATIONS, None)
    return {name: tuple(columns) for name, columns in sorted(tables.items())}


@cache
def warehouse_projections() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every projection after all migrations: its name -> (its table, the table's columns it copies)."""
    projections: dict[str, tuple[str, tuple[str, ...]]] = {}
    for migration in migrations():
        for op in migration.forward:
            if isinstance(op, AddProjection):
                projections[op.name] = (op.table, op.columns)
            elif isinstance(op, DropProjection):
                projections.pop(op.name, None)
            elif isinstance(op, DropTable):
                projections = {n: p for n, p in projections.items() if p[0] != op.name}
    return dict(sorted(projections.items()))


def control_tables() -> dict[str, Columns]:
    """Every control-plane table with its columns (name, SQL type as rendered by SQLAlchemy)."""
    return {
        name: tuple((column.name, str(column.type)) for column in table.columns)
        for name, table in sorted(Base.metadata.tables.items())
    }

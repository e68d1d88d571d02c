"""What a delete in the control database leaves behind, and for how long: the proof says so, per database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

_SQLITE = (
    "SQLite overwrites deleted rows with zeros in the database file (secure_delete), and the erasure moves its "
    "write-ahead log into the file and truncates it (no earlier page image stays) unless a reader holds it open"
)
_POSTGRESQL = (
    "PostgreSQL keeps deleted and updated rows as dead tuples until VACUUM (autovacuum, usually within minutes) "
    "prunes them, and in its write-ahead log and base backups until those expire (30 days in the manifests)"
)


def deletion_note(engine: AsyncEngine) -> str:
    """How physical a control-database delete is on ``engine``'s database."""
    return _POSTGRESQL if engine.dialect.name == "postgresql" else _SQLITE


async def make_deletes_physical(engine: AsyncEngine, tables: Sequence[str]) -> None:
    """Make the deletes already committed on ``engine`` physical where the database allows it now.

    SQLite: checkpoint the write-ahead log into the database file (where ``secure_delete`` zeroed the deleted
    cells) and truncate it, so no earlier page image with the deleted rows stays in either file. A reader with an
    open snapshot keeps the log from being truncated; the next erasure's checkpoint finishes the job.
    PostgreSQL: ``VACUUM`` each of ``tables`` (names from our models, never from input), pruning their dead
    tuples; an older snapshot still open elsewhere keeps them until the next vacuum."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    elif engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in tables:
                await autocommit.exec_driver_sql(f"VACUUM {table}")

"""What a delete in the control database leaves behind, and for how long: the proof says so, per database."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

_SQLITE = (
    "SQLite overwrites deleted rows with zeros in the database file (secure_delete); earlier page images in its "
    "write-ahead log are overwritten as the log cycles (a checkpoint every 1,000 pages)"
)
_POSTGRESQL = (
    "PostgreSQL keeps deleted and updated rows as dead tuples until VACUUM (autovacuum, usually within minutes) "
    "prunes them, and in its write-ahead log and base backups until those expire (30 days in the manifests)"
)


def deletion_note(engine: AsyncEngine) -> str:
    """How physical a control-database delete is on ``engine``'s database."""
    return _POSTGRESQL if engine.dialect.name == "postgresql" else _SQLITE

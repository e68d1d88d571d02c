"""Running the control-plane migrations from code, on PostgreSQL and SQLite alike.

``upgrade_to_head`` is synchronous on purpose: async callers hand it to ``AsyncConnection.run_sync`` so the
migrations run on the very connection (and transaction) the caller holds; :func:`upgrade_engine_to_head` does
that for a whole engine.
"""

from __future__ import annotations

import asyncio
import io
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Serialises concurrent starts (gateway and loader booting together) on one PostgreSQL database.
_ADVISORY_LOCK_KEY = 0x7A9_C0_17

# One upgrade at a time per event loop: see upgrade_engine_to_head.
_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def alembic_config(url: str | None = None, *, output_buffer: io.StringIO | None = None) -> Config:
    """An Alembic config built in code, pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config(output_buffer=output_buffer)
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation treats "%" specially; percent-encoded passwords must survive.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision shipped with this build."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found under {MIGRATIONS_DIR}")
    return head


def upgrade_to_head(connection: Connection) -> None:
    """Apply every pending revision on ``connection``; a no-op when already at head. Safe to re-run.

    Concurrent callers wait for each other, so the second one finds the schema current instead of racing to
    create it: on PostgreSQL through a transaction-scoped advisory lock; on SQLite by taking the database's
    write lock first (``BEGIN IMMEDIATE``; the driver would otherwise run each DDL statement in a transaction
    of its own, and two processes starting on a fresh file would both create the first table). A waiting
    SQLite caller is bounded by the connection's ``busy_timeout``.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    elif connection.dialect.name == "sqlite" and not _sqlite_in_transaction(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade_engine_to_head(engine: AsyncEngine) -> None:
    """Apply every pending revision in one transaction on ``engine``, as :func:`upgrade_to_head` does.

    Alembic keeps the running migration's context in module globals, and each ``run_sync`` runs in a greenlet
    of the event loop: two upgrades started together in one process (several stores starting at once) would
    interleave at every database call and run each other's steps on the wrong connection. They take turns
    here; processes take turns through the database's own lock, as above.
    """
    loop = asyncio.get_running_loop()
    lock = _loop_locks.setdefault(loop, asyncio.Lock())
    async with lock, engine.begin() as connection:
        await connection.run_sync(upgrade_to_head)


def _sqlite_in_transaction(connection: Connection) -> bool:
    """Whether the SQLite driver (sqlite3, or aiosqlite around it) already opened a transaction here, as an
    earlier statement on this connection may have; it then holds the locks it needs."""
    return bool(getattr(connection.connection.driver_connection, "in_transaction", False))


def downgrade_to(connection: Connection, revision: str) -> None:
    """Step back to ``revision`` (``"base"`` removes every control-plane table). Destroys the data above it."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None before the first migration."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_sql(url: str) -> str:
    """The SQL an upgrade to head would run on a fresh database of ``url``'s dialect, without connecting."""
    buffer = io.StringIO()
    config = alembic_config(url, output_buffer=buffer)
    command.upgrade(config, "head", sql=True)
    return buffer.getvalue()

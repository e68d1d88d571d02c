"""Async engines for the control store: PostgreSQL through asyncpg, SQLite through aiosqlite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SUPPORTED_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")


def normalise_url(url: str | URL) -> URL:
    """The async form of ``url``: a bare ``postgresql://`` or ``sqlite://`` gains its async driver.

    Raises ValueError for any other backend, or for an in-memory SQLite database (each pooled connection
    would see its own empty database).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("the control store needs a SQLite file, not an in-memory database")
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ValueError(
            f"unsupported control store URL {parsed.drivername!r}; use one of {SUPPORTED_DRIVERS}"
        )
    return parsed


def create_engine(url: str | URL) -> AsyncEngine:
    """An engine for ``url``. SQLite files get WAL journaling, foreign keys and a busy timeout on every connection."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(parsed, pool_size=5, max_overflow=5, pool_pre_ping=True, pool_recycle=1800)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()

"""Async engines for the control store: PostgreSQL through asyncpg, SQLite through aiosqlite."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SUPPORTED_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")

# How long a SQLite statement waits for another connection's lock before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 5.0


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
    """An engine for ``url``. SQLite connections get a busy timeout, foreign keys and secure deletion; the
    file's switch to write-ahead logging is :func:`use_write_ahead_log`'s, once per file, since it is the one step
    that can fail at once instead of waiting for the lock."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(parsed, pool_size=5, max_overflow=5, pool_pre_ping=True, pool_recycle=1800)


async def use_write_ahead_log(engine: AsyncEngine, *, timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
    """Switch ``engine``'s SQLite file to write-ahead logging (the mode stays in the file); a no-op elsewhere.

    Two connections converting a fresh file at once each hold a shared lock the other must see released, so
    SQLite fails one of them with "database is locked" at once rather than through ``busy_timeout``: the
    loser retries until ``timeout_s`` has passed, then raises the driver's error.
    """
    if engine.dialect.name != "sqlite":
        return
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            async with engine.connect() as connection:
                await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            return
        except OperationalError as exc:
            if "database is locked" not in str(exc.orig) or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # First, so that every statement after it waits for a lock held elsewhere instead of failing.
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A deleted row (an erased subject's) is overwritten with zeros in the file, not left in a free page.
        cursor.execute("PRAGMA secure_delete=ON")
    finally:
        cursor.close()

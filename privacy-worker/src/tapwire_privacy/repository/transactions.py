"""What every part of the privacy repository shares: short transactions on the control store and the clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tapwire_core.clock import Clock


class Transactions:
    """Opens one short transaction per call on the control store's engine; timestamps come from ``clock``."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.engine = engine
        self.clock = clock

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction, committed when the block ends without an error."""
        async with self._sessions() as session, session.begin():
            yield session

"""Reading a control-database query in batches, for exports that must not hold a whole account in memory."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_privacy.stores.base import EXPORT_BATCH_ROWS


async def row_batches(
    engine: AsyncEngine, query: Select[Any], *, size: int = EXPORT_BATCH_ROWS
) -> AsyncGenerator[list[Any], None]:
    """The query's ORM objects, ``size`` at a time, fetched as they are consumed (a server-side cursor on
    PostgreSQL; SQLite steps its cursor), in one read transaction."""
    async with AsyncSession(engine) as session:
        result = await session.stream_scalars(query.execution_options(yield_per=size))
        async for batch in result.partitions(size):
            yield list(batch)

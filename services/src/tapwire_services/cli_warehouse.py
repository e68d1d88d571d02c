"""The warehouse a command-line tool works on: ClickHouse when ``TAPWIRE_CLICKHOUSE_URL`` is set, else the
embedded chDB under ``TAPWIRE_DATA_DIR`` (stop ``tapwire up`` first: one process at a time may open it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_core.warehouse.migrations import migrate


@asynccontextmanager
async def open_warehouse(settings: Settings) -> AsyncIterator[Warehouse]:
    """Started and migrated to head; closed on exit."""
    warehouse: Warehouse
    if settings.clickhouse_url:
        from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse

        warehouse = ClickHouseWarehouse(settings.clickhouse_url)
    else:
        from tapwire_core.warehouse.chdb import ChdbWarehouse

        warehouse = ChdbWarehouse(settings.data_dir.resolve() / "chdb")
    await warehouse.start()
    try:
        await migrate(warehouse, cluster=settings.clickhouse_cluster)
        yield warehouse
    finally:
        await warehouse.close()

"""Running compiled queries: options from settings and the clock."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_query.cql import Compiled, CompileOptions


def now_ms() -> int:
    return int(time.time() * 1000)


def utc_day(epoch_ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).date()


def options_for(settings: Settings, *, snapshot_ms: int | None = None) -> CompileOptions:
    """Compile options for this deployment; relative windows end on the snapshot's (or today's) UTC date."""
    anchor = snapshot_ms if snapshot_ms is not None else now_ms()
    return CompileOptions(
        today=utc_day(anchor), snapshot_ms=snapshot_ms, cluster=settings.clickhouse_cluster is not None
    )


async def run(warehouse: Warehouse, compiled: Compiled) -> list[dict[str, Any]]:
    """Rows of ``compiled``. Raises the warehouse's ``WarehouseUnavailable`` / ``WarehouseError``."""
    return await warehouse.query(compiled.sql, compiled.params)

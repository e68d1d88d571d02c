"""Running compiled queries: options from settings and the clock, warehouse faults mapped to API errors."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from tapwire_core.http.errors import ApiError
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse, WarehouseError, WarehouseUnavailable
from tapwire_query.cql import Compiled, CompileOptions, CqlError

log = logging.getLogger(__name__)


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
    """Rows of ``compiled``. Raises ``ApiError`` 503 when the warehouse is unreachable or overloaded, 500
    when it rejects the statement (a compiler fault: the input was validated, so it is logged)."""
    try:
        return await warehouse.query(compiled.sql, compiled.params)
    except WarehouseUnavailable as exc:
        raise ApiError(503, "the warehouse is unavailable; retry later", retry_after=5) from exc
    except WarehouseError as exc:
        log.error("compiled query failed", extra={"error": str(exc)[:500]})
        raise ApiError(500, "query failed") from exc


def client_error(exc: CqlError) -> ApiError:
    return ApiError(422, str(exc))

"""A read-only view of a warehouse whose every statement runs under cost limits (the query service's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tapwire_core.warehouse.base import Params, QueryLimits, Warehouse, WarehouseError

if TYPE_CHECKING:
    from tapwire_core.warehouse.json_insert import JsonInsert


class LimitedWarehouse(Warehouse):
    """``warehouse`` for readers: ``query`` runs under ``limits`` (unless the caller gives its own), and every
    write is refused with ``WarehouseError`` before it reaches the engine. Starting and closing are the
    owner's business: the view never starts or closes what it wraps."""

    def __init__(self, warehouse: Warehouse, limits: QueryLimits) -> None:
        self._warehouse = warehouse
        self.limits = limits

    @property
    def database(self) -> str:
        return self._warehouse.database

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return await self._warehouse.ping()

    async def query(
        self, sql: str, params: Params | None = None, *, limits: QueryLimits | None = None
    ) -> list[dict[str, Any]]:
        return await self._warehouse.query(sql, params, limits=limits or self.limits)

    async def command(self, sql: str, params: Params | None = None) -> None:
        raise WarehouseError("this warehouse view is read-only")

    async def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        raise WarehouseError("this warehouse view is read-only")

    async def insert_json(
        self, statement: JsonInsert, rows: bytes, *, dedup_token: str | None = None
    ) -> None:
        raise WarehouseError("this warehouse view is read-only")

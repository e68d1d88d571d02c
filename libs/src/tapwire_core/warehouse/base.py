"""The Warehouse: ClickHouse, reached either in-process (chDB) or over HTTP (clickhouse-connect).

Both implementations run the same SQL. Values travel as server-side parameters (``{name:Type}``), never
pasted into SQL text; ``tests/contract/test_warehouse_contract.py`` runs against both.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tapwire_core.warehouse.json_insert import JsonInsert


class WarehouseError(Exception):
    """A statement failed for a reason other than reachability (bad SQL, type error).

    ``code`` is ClickHouse's error code when the server gave one (``TOO_MANY_ROWS`` is 158, …).
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class WarehouseUnavailable(WarehouseError):
    """ClickHouse could not be reached, timed out, or cannot do it now (overload, memory, replication; see
    ``tapwire_core.warehouse.errors``). Retryable; never dead-letter on this."""


Params = Mapping[str, Any]


@dataclass(frozen=True)
class QueryLimits:
    """What one read may cost, sent with the statement as ClickHouse settings: at most ``max_execution_s`` of
    wall time, ``max_memory_bytes`` of memory and ``max_rows_to_read`` rows read from tables, each past its
    limit an error (``TIMEOUT_EXCEEDED``, ``MEMORY_LIMIT_EXCEEDED``, ``TOO_MANY_ROWS``) rather than a partial
    answer. ``read_only`` runs it under ``readonly=2``: it may read and set settings, never write or alter."""

    max_execution_s: int
    max_memory_bytes: int
    max_rows_to_read: int
    read_only: bool = True

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "max_execution_time": self.max_execution_s,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.max_memory_bytes,
            "max_rows_to_read": self.max_rows_to_read,
            "read_overflow_mode": "throw",
        }
        if self.read_only:
            settings["readonly"] = 2
        return settings


def check_columns(table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> None:
    """Raise ``WarehouseError`` unless ``data`` holds one sequence per column, all of one length."""
    if len(data) != len(columns):
        raise WarehouseError(f"{table}: {len(data)} columns of values for {len(columns)} column names")
    if len({len(values) for values in data}) > 1:
        raise WarehouseError(f"{table}: columns of values differ in length")


class Warehouse(abc.ABC):
    """Async access to one ClickHouse database. Safe to share between tasks."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def command(self, sql: str, params: Params | None = None) -> None:
        """Run a statement that returns no rows (DDL, mutations)."""

    @abc.abstractmethod
    async def query(
        self, sql: str, params: Params | None = None, *, limits: QueryLimits | None = None
    ) -> list[dict[str, Any]]:
        """Run a SELECT and return its rows as dicts keyed by column name, under ``limits`` when given.

        Cancelling the caller stops the statement where the engine allows: ClickHouse is told to kill it
        (``KILL QUERY`` by its query id); chDB drops it when it has not started yet, and otherwise lets it
        finish within its limits (one statement at a time runs on its engine)."""

    @abc.abstractmethod
    async def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """Insert rows atomically per call. ``dedup_token`` makes a retried identical insert a no-op where the
        engine supports it; correctness never depends on it (tables deduplicate on event id)."""

    async def insert_columns(
        self,
        table: str,
        columns: Sequence[str],
        data: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """``insert`` for data held column by column: ``data[i]`` is every row's value of ``columns[i]``, and
        all of them have the same length. Same atomicity and deduplication as ``insert``. This default
        transposes and calls ``insert``; an engine that takes columns as they are overrides it."""
        check_columns(table, columns, data)
        await self.insert(table, columns, list(zip(*data, strict=True)), dedup_token=dedup_token)

    @abc.abstractmethod
    async def insert_json(
        self, statement: JsonInsert, rows: bytes, *, dedup_token: str | None = None
    ) -> None:
        """Run ``statement`` over ``rows``, JSON in ``JSONEachRow`` form (objects one after another, or one
        array of them). Atomic per call and deduplicated like ``insert``. Rows the engine cannot parse or
        convert raise ``WarehouseError`` and insert nothing."""

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    @property
    @abc.abstractmethod
    def database(self) -> str: ...

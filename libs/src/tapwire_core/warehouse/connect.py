"""What both engines share: a clickhouse-connect client behind the async ``Warehouse`` interface.

chDB (in-process) and ClickHouse (HTTP) are both driven through clickhouse-connect, so both run the same SQL,
bind parameters the same way and return identically typed rows (timezone-aware UTC datetimes, ints, strings).
The synchronous client runs on an executor the subclass chooses; the event loop never blocks on it.

Parameters are always sent server-side: every key must appear in the SQL as a ``{name:Type}`` placeholder,
which is what makes clickhouse-connect bind it as ``param_name`` instead of formatting it into the SQL text.
A statement that would fall back to client-side formatting is refused with ``WarehouseError``.
"""

from __future__ import annotations

import abc
import asyncio
import re
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Final, TypeVar

from clickhouse_connect.driver import options as connect_options
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from clickhouse_connect.driver.exceptions import DatabaseError as ConnectDatabaseError

from tapwire_core.warehouse.base import (
    Params,
    QueryLimits,
    Warehouse,
    WarehouseError,
    WarehouseUnavailable,
    check_columns,
)
from tapwire_core.warehouse.errors import transient_kind
from tapwire_core.warehouse.json_insert import JsonInsert

T = TypeVar("T")

READONLY: Final = 164
_FIRST_WORD: Final = re.compile(r"^(?:\s|\(|--[^\n]*\n|/\*.*?\*/)*([A-Za-z]+)", re.DOTALL)
_READ_WORDS: Final = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"})
_PLACEHOLDER: Final = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:[^{}]+\}")
_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_read(sql: str) -> bool:
    """Whether ``sql`` is a read (``SELECT``, ``WITH … SELECT``, ``SHOW``, ``DESCRIBE``, ``EXISTS``, ``EXPLAIN``)."""
    first = _FIRST_WORD.match(sql)
    return first is not None and first.group(1).upper() in _READ_WORDS


def checked_identifier(name: str) -> str:
    """``name`` if it is a plain ClickHouse identifier; identifiers are never taken from user input."""
    if not _IDENTIFIER.match(name):
        raise WarehouseError(f"not a plain identifier: {name!r}")
    return name


def server_side_params(sql: str, params: Params | None) -> dict[str, Any] | None:
    """The parameters, after checking that each one is bound by a ``{name:Type}`` placeholder in ``sql``."""
    if not params:
        return None
    bound = set(_PLACEHOLDER.findall(sql))
    unbound = sorted(set(params) - bound)
    if unbound:
        raise WarehouseError(f"parameters without a {{name:Type}} placeholder: {', '.join(unbound)}")
    return dict(params)


def wire_type(column_type: str) -> str:
    """The type a column's values are sent as: ``LowCardinality(T)`` goes as ``T``.

    The server builds the dictionary while converting the Native block to the column's type, in C++ and off
    this process's GIL; clickhouse-connect would build it in Python, the largest Python cost of an insert
    after pivoting rows into columns.
    """
    if column_type.startswith("LowCardinality(") and column_type.endswith(")"):
        return column_type[len("LowCardinality(") : -1]
    return column_type


def translate(exc: Exception) -> WarehouseError:
    """Map a clickhouse-connect (or serialization) failure onto the warehouse's two error types, keeping the
    server's error code: unreachable, or a server error of a transient kind (``errors.TRANSIENT_KINDS``), is
    ``WarehouseUnavailable``."""
    code = getattr(exc, "code", None)
    code = code if isinstance(code, int) else None
    if isinstance(exc, OperationalError):
        return WarehouseUnavailable(str(exc), code=code)
    if isinstance(exc, ConnectDatabaseError) and transient_kind(code, str(exc)) is not None:
        return WarehouseUnavailable(str(exc), code=code)
    return WarehouseError(str(exc), code=code)


class ConnectWarehouse(Warehouse):
    """A ``Warehouse`` over one clickhouse-connect client. Subclasses open the client and pick the executor."""

    def __init__(self, database: str) -> None:
        self._database = checked_identifier(database)
        self._client: Client | None = None
        # Column types per (table, columns): saves a DESCRIBE round trip on every insert. DDL clears it.
        self._column_types: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    @property
    def database(self) -> str:
        return self._database

    @abc.abstractmethod
    def _executor(self) -> Executor:
        """Where every blocking client call runs."""

    @abc.abstractmethod
    def _connect(self) -> Client:
        """Open a client on the server or engine. Runs on ``_executor()``."""

    @abc.abstractmethod
    def _run_json_insert(
        self, client: Client, statement: JsonInsert, rows: bytes, settings: dict[str, Any] | None
    ) -> None:
        """Hand ``rows`` to the engine and run ``statement`` over them. Runs on ``_executor()``."""

    def _open(self) -> Client:
        """A connected client with ``self.database`` created and selected; closed again if that fails."""
        client = self._connect()
        try:
            # Only when missing: services whose account may read but not create (readonly=2) start too.
            if not client.command(f"EXISTS DATABASE {self.database}"):
                client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            client.database = self.database
        except BaseException:
            client.close()
            raise
        # clickhouse-connect imports numpy and pandas (when installed) lazily, on the first insert, to check
        # whether the rows are an array or a data frame: over a second of work that would stall the loader's
        # first batch. Resolving them here moves it to start-up.
        getattr(connect_options, "np", None)
        getattr(connect_options, "pd", None)
        return client

    async def _call(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), fn)
        except WarehouseError:
            raise
        except ClickHouseError as exc:
            raise translate(exc) from exc
        except (ValueError, TypeError, OverflowError, KeyError, IndexError) as exc:
            # Raised while serializing rows that do not fit the column types: the data is wrong.
            raise WarehouseError(f"{type(exc).__name__}: {exc}") from exc

    def _require(self) -> Client:
        if self._client is None:
            raise WarehouseError("warehouse is not started")
        return self._client

    async def start(self) -> None:
        if self._client is None:
            self._client = await self._call(self._open)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._call(client.close)

    async def command(self, sql: str, params: Params | None = None) -> None:
        client = self._require()
        bound = server_side_params(sql, params)
        self._column_types.clear()
        await self._call(lambda: client.command(sql, parameters=bound))

    async def query(
        self, sql: str, params: Params | None = None, *, limits: QueryLimits | None = None
    ) -> list[dict[str, Any]]:
        client = self._require()
        bound = server_side_params(sql, params)
        if limits is not None and limits.read_only and not is_read(sql):
            # Refused here as well as by the server: chDB would keep readonly=2 for its whole engine after a
            # write statement carrying it, so a write must never be sent with it.
            raise WarehouseError("Cannot execute a write under read-only limits (READONLY)", code=READONLY)
        query_id = uuid.uuid4().hex
        settings = (limits.settings() if limits else {}) | self._query_id_settings(query_id)

        def run() -> list[dict[str, Any]]:
            result = client.query(sql, parameters=bound, settings=settings or None)
            names = result.column_names
            return [dict(zip(names, row, strict=True)) for row in result.result_rows]

        try:
            return await self._call(run)
        except asyncio.CancelledError:
            # The caller gave up: the statement may still be running, costing the server for nobody. (A
            # statement whose answer timed out stops by itself: callers with limits keep its execution
            # time under the client's read timeout.)
            self._stop_query(client, query_id)
            raise

    def _query_id_settings(self, query_id: str) -> dict[str, str]:
        """Settings naming the statement's id for ``_stop_query``; none where the engine has no use for it."""
        return {}

    def _stop_query(self, client: Client, query_id: str) -> None:
        """Stop the statement ``query_id`` if it still runs, without waiting (called on the event loop).
        Engines that cannot stop a running statement leave it to its limits."""

    async def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """Insert in clickhouse-connect's Native format: values travel as binary column data, never SQL."""
        self._require()
        if not rows:
            return
        width = len(columns)
        if any(len(row) != width for row in rows):
            raise WarehouseError(f"every row must have {width} values for {table}")
        await self._insert(table, columns, rows, column_oriented=False, dedup_token=dedup_token)

    async def insert_columns(
        self,
        table: str,
        columns: Sequence[str],
        data: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """Columns go to clickhouse-connect as they are (``column_oriented``): it serializes each list
        straight into its Native column, with no pivot from rows."""
        self._require()
        check_columns(table, columns, data)
        if not data or not data[0]:
            return
        await self._insert(table, columns, data, column_oriented=True, dedup_token=dedup_token)

    async def _insert(
        self,
        table: str,
        columns: Sequence[str],
        data: Sequence[Sequence[Any]],
        *,
        column_oriented: bool,
        dedup_token: str | None,
    ) -> None:
        client = self._require()
        checked_identifier(table)
        names = tuple(checked_identifier(column) for column in columns)
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        key = (table, names)

        def run() -> None:
            types = self._column_types.get(key)
            if types is None:
                described = client.query(f"DESCRIBE TABLE {table}")
                by_name = {row[0]: row[1] for row in described.result_rows}
                missing = [name for name in names if name not in by_name]
                if missing:
                    raise WarehouseError(f"{table} has no column(s) {', '.join(missing)}")
                types = [wire_type(by_name[name]) for name in names]
                self._column_types[key] = types
            client.insert(
                table,
                data,
                column_names=list(names),
                column_type_names=types,
                column_oriented=column_oriented,
                settings=settings,
            )

        await self._call(run)

    async def insert_json(
        self, statement: JsonInsert, rows: bytes, *, dedup_token: str | None = None
    ) -> None:
        client = self._require()
        checked_identifier(statement.table)
        for column in statement.columns:
            checked_identifier(column)
        if len(rows) < 64 and not rows.strip(b" \t\r\n[]"):  # nothing to insert (a long input is not copied)
            return
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        await self._call(lambda: self._run_json_insert(client, statement, rows, settings))

    async def ping(self) -> bool:
        client = self._client
        if client is None:
            return False
        try:
            return bool(await self._call(lambda: client.command("SELECT 1") == 1))
        except WarehouseError:
            return False

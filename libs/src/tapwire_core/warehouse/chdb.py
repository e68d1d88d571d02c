"""The embedded warehouse: chDB (ClickHouse in-process) on a data directory that survives restarts.

chDB runs one engine per process on one data directory, is synchronous, and must not be entered concurrently.
Every call of every ``ChdbWarehouse`` in the process therefore runs on one dedicated worker thread, so the
event loop never blocks and the engine never sees two statements at once. Warehouses on the same directory
share the engine, each with its own current database; a second directory in the same process is refused.

``dedup_token`` is accepted and passed as ``insert_deduplication_token``; plain (non-replicated) MergeTree
tables ignore it, which is fine because every table deduplicates on its key.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from tapwire_core.warehouse.connect import ConnectWarehouse
from tapwire_core.warehouse.json_insert import FORMAT, JsonInsert

DEFAULT_DATABASE = "tapwire"

# The process's one chDB thread. The executor starts its thread on first use, so importing costs nothing.
_CHDB_THREAD: Final = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chdb")


class ChdbWarehouse(ConnectWarehouse):
    """chDB on ``path`` (created if missing), database ``database`` (created if missing)."""

    def __init__(self, path: Path | str, *, database: str = DEFAULT_DATABASE) -> None:
        super().__init__(database)
        self._path = Path(path).resolve()

    @property
    def path(self) -> Path:
        return self._path

    def _executor(self) -> Executor:
        return _CHDB_THREAD

    def _connect(self) -> Client:
        self._path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(interface="chdb", path=str(self._path), tz_mode="aware")

    def _run_json_insert(
        self, client: Client, statement: JsonInsert, rows: bytes, settings: dict[str, Any] | None
    ) -> None:
        # chDB reads the rows from a file, as clickhouse-connect hands it Native inserts; the path is ours.
        fd, name = tempfile.mkstemp(prefix="tapwire-rows-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(rows)
            source = f"file({_sql_string(name)}, '{FORMAT}', '{statement.structure}')"
            client.command(statement.statement(source), settings=settings)
        finally:
            os.unlink(name)


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

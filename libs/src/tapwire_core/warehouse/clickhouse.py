"""The distributed warehouse: a ClickHouse server over HTTP through clickhouse-connect.

Configured by a URL, ``http[s]://user:password@host:port/database`` (``TAPWIRE_CLICKHOUSE_URL``). The
synchronous client runs on a small thread pool (its connection pool is sized to match); no HTTP session id
is used, so calls from several threads never collide on a server session. Request bodies are compressed
with lz4; responses arrive uncompressed.

Unreachable server, refused connection or timeout -> ``WarehouseUnavailable``; a statement the server
rejects -> ``WarehouseError``, except for the transient kinds of ``tapwire_core.warehouse.errors`` (overload,
memory, replication...), which are ``WarehouseUnavailable`` too.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import clickhouse_connect
import lz4.frame  # type: ignore[import-untyped]
from clickhouse_connect.driver import httputil
from clickhouse_connect.driver.client import Client

from tapwire_core.warehouse.base import WarehouseError
from tapwire_core.warehouse.connect import ConnectWarehouse, checked_identifier
from tapwire_core.warehouse.json_insert import FORMAT, JsonInsert

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "default"
_LZ4_BODY: Final = {"Content-Encoding": "lz4"}


class ClickHouseWarehouse(ConnectWarehouse):
    """ClickHouse at ``url``; the database named in the URL path is created if missing."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 3.0,
        timeout_s: float = 60.0,
        workers: int = 4,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WarehouseError("ClickHouse URL must look like http://user:password@host:8123/database")
        database = unquote(parts.path.strip("/")) or DEFAULT_DATABASE
        super().__init__(checked_identifier(database))
        self._secure = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (8443 if self._secure else 8123)
        self._user = unquote(parts.username) if parts.username else "default"
        self._password = unquote(parts.password) if parts.password else ""
        self._connect_timeout_s = connect_timeout_s
        self._timeout_s = timeout_s
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._killer: ThreadPoolExecutor | None = None

    def _executor(self) -> Executor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="clickhouse")
        return self._pool

    def _connect(self) -> Client:
        client = clickhouse_connect.get_client(
            host=self._host,
            port=self._port,
            username=self._user,
            password=self._password,
            secure=self._secure,
            compress="lz4",
            autogenerate_session_id=False,
            connect_timeout=self._connect_timeout_s,
            send_receive_timeout=self._timeout_s,
            query_retries=0,
            tz_mode="aware",
            pool_mgr=httputil.get_pool_manager(maxsize=self._workers, num_pools=1),
        )
        return client

    def _query_id_settings(self, query_id: str) -> dict[str, str]:
        return {"query_id": query_id}

    def _stop_query(self, client: Client, query_id: str) -> None:
        """``KILL QUERY`` on a thread of its own, so it is not queued behind the statements it stops (every
        worker may be waiting on one); a user may always kill its own queries, read-only ones included."""

        def kill() -> None:
            try:
                client.command(
                    "KILL QUERY WHERE query_id = {query_id:String} ASYNC", parameters={"query_id": query_id}
                )
            except Exception as exc:  # the server is gone too: nothing runs there any more
                log.warning(
                    "could not stop a ClickHouse query", extra={"query_id": query_id, "error": str(exc)[:300]}
                )

        if self._killer is None:
            self._killer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-kill")
        self._killer.submit(kill)

    def _run_json_insert(
        self, client: Client, statement: JsonInsert, rows: bytes, settings: dict[str, Any] | None
    ) -> None:
        # The rows are the request body, read by input(); compressed like clickhouse-connect's own inserts.
        source = f"input('{statement.structure}')"
        client.command(
            f"{statement.statement(source)} FORMAT {FORMAT}",
            data=lz4.frame.compress(rows),
            settings=settings,
            transport_settings=_LZ4_BODY,
        )

    async def close(self) -> None:
        await super().close()
        for pool in (self._pool, self._killer):
            if pool is not None:
                pool.shutdown(wait=False)
        self._pool = self._killer = None

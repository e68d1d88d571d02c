"""TEST RIG, not product code: a minimal ClickHouse HTTP interface backed by chDB.

No ClickHouse server is available to the test suite, so this process speaks enough of ClickHouse's HTTP
protocol for clickhouse-connect (and so ``ClickHouseWarehouse``) to run the same test suite as chDB:

- ``GET /ping`` -> ``Ok.``
- ``GET /`` and ``POST /`` with ``query`` in the URL and/or the body; ``param_<name>`` URL parameters are
  ClickHouse's server-side query parameters and are handed to chDB as its query parameters (both parse the
  values in ClickHouse's escaped text form); ``database`` selects the current database; ``default_format``
  picks the output format when the SQL has no ``FORMAT`` clause (default ``TabSeparated``).
- ``INSERT ... FORMAT <fmt>`` in the URL with a data body (clickhouse-connect sends ``Native``) is streamed
  into chDB in that format. ``INSERT ... SELECT ... FROM input('<structure>') FORMAT <fmt>`` reads the body
  through ``input()``: chDB cannot stream into that, so the rig writes the body to a file and reads it with
  ``file()`` in ``input()``'s place.
- Request bodies may be compressed (``Content-Encoding: lz4|gzip|deflate``) and may be chunked; responses
  are never compressed (ClickHouse compresses only on request, and clients honour ``Content-Encoding``).
- The cost-limit settings (``LIMIT_SETTINGS``: ``max_execution_time``, ``max_memory_usage``,
  ``max_rows_to_read``, ``readonly``, ...) given as URL parameters apply to the statement, as ClickHouse applies
  them (the rig appends them as a ``SETTINGS`` clause). Other URL parameters (``session_id``,
  ``insert_deduplication_token`` ...) are accepted and ignored. Credentials are not checked.
- ``query_id`` names the statement while it runs. ``KILL QUERY WHERE query_id = '<id>'`` (literal or bound
  ``{name:String}``, ``SYNC``/``ASYNC``) stops it if it is still waiting (see ``--slow-param``), runs without
  the engine lock, and answers one row per stopped statement; the stopped statement fails with code 394
  (``QUERY_WAS_CANCELLED``). ``GET /rig/killed`` (the rig's own path) lists the ids stopped so far, as JSON.
- ``--slow-param VALUE=SECONDS`` (repeatable): a statement with a bound parameter equal to ``VALUE`` waits
  ``SECONDS`` before it runs, outside the engine lock and stoppable by ``KILL QUERY`` — a stand-in for a long
  query, since the data the tests load is small.
- Responses carry ``X-ClickHouse-Summary``, ``-Format``, ``-Timezone``, ``-Query-Id``,
  ``-Server-Display-Name``; errors are HTTP 500 with ``Code: N. DB::Exception: ...`` text and the
  ``X-ClickHouse-Exception-Code`` header, so clients raise their usual errors.

Faults on purpose, for tests of what clients do with server errors: ``POST /rig/faults`` with a JSON object
makes the statements it matches fail until it runs out, ``DELETE /rig/faults`` removes every fault. Fields:
``code`` and ``name`` (a ClickHouse error answered as HTTP 500 with that code) or ``status`` alone (an HTTP
error without a code, as a proxy in front of ClickHouse answers); ``statement`` (matched against the start of
the SQL, case-insensitive; default every statement); ``database``; ``times`` (how many matching statements
fail) and/or ``seconds`` (for how long); ``applied`` (run the statement, then answer the error, as when an
insert's outcome is unknown). ``GET /rig/faults`` answers how many statements each fault failed.

chDB is not entered concurrently: a lock serializes statements. Run as
``python -m tests.rig.clickhouse_http --data DIR [--port N]``; it prints ``LISTENING <port>`` once ready and
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chdb import session as chdb_session

# Neither package ships type information; both are used through these two names only.
_Session: Any = chdb_session.Session
_lz4_frame: Any = importlib.import_module("lz4.frame")

_INSERT_WITH_FORMAT = re.compile(r"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE | re.DOTALL)
_BODY_INSERT = re.compile(
    rb"^\s*(INSERT\s+INTO\s+.+?)\s+FORMAT\s+(\w+)[ \t]*\r?\n", re.IGNORECASE | re.DOTALL
)
_INPUT_FUNCTION = re.compile(r"\binput\(\s*'", re.IGNORECASE)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEXT_FORMATS = ("TabSeparated", "TSV", "CSV", "JSON", "Pretty", "Values", "Vertical", "Markdown")


class RigError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# Settings ClickHouse takes from the URL that the rig applies to the statement (the cost limits clients set).
LIMIT_SETTINGS = frozenset(
    {
        "max_execution_time",
        "timeout_overflow_mode",
        "max_memory_usage",
        "max_rows_to_read",
        "max_bytes_to_read",
        "read_overflow_mode",
        "readonly",
    }
)
_KILL = re.compile(
    r"^\s*KILL\s+QUERY\s+WHERE\s+query_id\s*=\s*(?:'(?P<literal>[^']*)'|\{(?P<param>\w+):String\})"
    r"(?:\s+(?:SYNC|ASYNC))?\s*(?:FORMAT\s+\w+\s*)?;?\s*$",
    re.IGNORECASE,
)


_READ = re.compile(r"^\s*\(*\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.IGNORECASE)


class Cancelled(Exception):
    """The statement was stopped by ``KILL QUERY`` before it ran."""


class Running:
    """Statements by query id while they run, the ones stopped, and the slow-down knob."""

    def __init__(self, slow: dict[str, float]) -> None:
        self.slow = slow
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}
        self.killed: list[str] = []

    def enter(self, query_id: str) -> threading.Event:
        stop = threading.Event()
        with self._lock:
            self._stops[query_id] = stop
        return stop

    def leave(self, query_id: str) -> None:
        with self._lock:
            self._stops.pop(query_id, None)

    def kill(self, query_id: str) -> bool:
        with self._lock:
            stop = self._stops.get(query_id)
            if stop is None:
                return False
            stop.set()
            self.killed.append(query_id)
            return True

    def wait_if_slow(self, params: dict[str, str], stop: threading.Event) -> None:
        delay = max((self.slow.get(value, 0.0) for value in params.values()), default=0.0)
        if delay and stop.wait(delay):
            raise Cancelled


class _InjectedStatus(Exception):
    """An injected HTTP error that carries no ClickHouse code."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _fault_error(fault: Fault) -> Exception:
    if fault.code is None:
        return _InjectedStatus(fault.status)
    return RigError(
        fault.code, f"Code: {fault.code}. DB::Exception: Injected by the test rig. ({fault.name})"
    )


class Engine:
    """The chDB session and the lock that keeps it to one statement at a time."""

    def __init__(self, path: Path, slow: dict[str, float] | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.session: Any = _Session(str(path))
        self.lock = threading.Lock()
        self.running = Running(slow or {})
        self.version = self.session.query("SELECT version()", "TabSeparated").bytes().decode().strip()
        self._current_database = "default"

    def _use(self, database: str | None) -> None:
        if not database or database == self._current_database:
            return
        if not _DATABASE_NAME.match(database):
            raise RigError(
                81, f"Code: 81. DB::Exception: Database {database} does not exist. (UNKNOWN_DATABASE)"
            )
        self.session.query(f"USE `{database}`", "TabSeparated")
        self._current_database = database

    def run(
        self, sql: str, fmt: str, params: dict[str, str], database: str | None
    ) -> tuple[bytes, dict[str, Any]]:
        with self.lock:
            self._use(database)
            started = time.perf_counter_ns()
            result = self.session.query(sql, fmt, params=params)
            summary = {
                "read_rows": result.rows_read(),
                "read_bytes": result.bytes_read(),
                "written_rows": 0,
                "written_bytes": 0,
                "elapsed_ns": time.perf_counter_ns() - started,
            }
            return result.bytes() or b"", summary

    def insert_select(self, statement: str, fmt: str, data: bytes, database: str | None) -> dict[str, Any]:
        """``statement`` reads ``data`` through ``input('<structure>')``."""
        fd, name = tempfile.mkstemp(prefix="rig-input-", suffix=".data")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            path = name.replace("\\", "\\\\").replace("'", "\\'")
            reading = _INPUT_FUNCTION.sub(lambda _: f"file('{path}', '{fmt}', '", statement, count=1)
            with self.lock:
                self._use(database)
                started = time.perf_counter_ns()
                result = self.session.query(reading, "TabSeparated")
                return {
                    "read_rows": result.rows_read(),
                    "read_bytes": result.bytes_read(),
                    "written_rows": result.rows_read(),
                    "written_bytes": result.bytes_read(),
                    "elapsed_ns": time.perf_counter_ns() - started,
                }
        finally:
            os.unlink(name)

    def insert(self, statement: str, fmt: str, data: bytes, database: str | None) -> dict[str, Any]:
        with self.lock:
            self._use(database)
            started = time.perf_counter_ns()
            with self.session.send_insert(statement, fmt) as inserter:
                if data:
                    inserter.append(data)
                done = inserter.finish()
            return {
                "read_rows": 0,
                "read_bytes": 0,
                "written_rows": done.rows_written,
                "written_bytes": done.bytes_written,
                "elapsed_ns": time.perf_counter_ns() - started,
            }


@dataclass
class Fault:
    """One injected failure rule (see the module docstring)."""

    code: int | None
    name: str
    status: int
    statement: str
    database: str | None
    times: int | None
    until: float | None
    applied: bool
    failed: int = 0

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> Fault:
        code = spec.get("code")
        seconds = spec.get("seconds")
        return cls(
            code=int(code) if code is not None else None,
            name=str(spec.get("name", "INJECTED")),
            status=int(spec.get("status", 500)),
            statement=str(spec.get("statement", "")).upper(),
            database=spec.get("database"),
            times=int(spec["times"]) if "times" in spec else None,
            until=time.monotonic() + float(seconds) if seconds is not None else None,
            applied=bool(spec.get("applied", False)),
        )

    def live(self) -> bool:
        if self.times is not None and self.failed >= self.times:
            return False
        return self.until is None or time.monotonic() < self.until

    def matches(self, sql: str, database: str | None) -> bool:
        if self.database is not None and self.database != database:
            return False
        return sql.lstrip().upper().startswith(self.statement)


class Faults:
    """The rules in force; shared by the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._rules.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def counts(self) -> list[int]:
        with self._lock:
            return [rule.failed for rule in self._rules]

    def take(self, sql: str, database: str | None) -> Fault | None:
        """The first live rule matching this statement, counted as used once."""
        with self._lock:
            for rule in self._rules:
                if rule.live() and rule.matches(sql, database):
                    rule.failed += 1
                    return rule
        return None


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding == "identity":
        return body
    if encoding == "lz4":
        # Streaming clients send one lz4 frame per block, back to back.
        parts = []
        while body:
            decompressor = _lz4_frame.LZ4FrameDecompressor()
            parts.append(decompressor.decompress(body))
            body = decompressor.unused_data
        return b"".join(parts)
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise RigError(
        1,
        f"Code: 1. DB::Exception: Unsupported Content-Encoding {encoding} in the test rig. (UNSUPPORTED_METHOD)",
    )


@dataclass
class _Request:
    """One request's statement: its parameters, the SQL, what the body holds after the SQL, and the INSERT
    clause and format when it is an insert."""

    params: dict[str, str]
    database: str | None
    bound: dict[str, str]
    sql: str
    body: bytes
    insert: re.Match[str] | None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse"
    engine: Engine
    faults: Faults

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the rig's output is only its LISTENING line and errors."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/ping":
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        if path == "/rig/killed":
            self._send(
                200, json.dumps(self.engine.running.killed).encode(), {"Content-Type": "application/json"}
            )
            return
        if path == "/rig/faults":
            self._send(200, json.dumps(self.faults.counts()).encode(), {"Content-Type": "application/json"})
            return
        self._handle(b"")

    def do_POST(self) -> None:
        body = self._read_body()
        if urlsplit(self.path).path == "/rig/faults":
            self.faults.add(Fault.from_json(json.loads(body)))
            self._send(200, b"{}", {"Content-Type": "application/json"})
            return
        self._handle(body)

    def do_DELETE(self) -> None:
        self._read_body()
        self.faults.clear()
        self._send(200, b"{}", {"Content-Type": "application/json"})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return body

    def _handle(self, body: bytes) -> None:
        query_id = str(uuid.uuid4())
        try:
            params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            query_id = params.get("query_id") or query_id
            request = self._request(params, body)
            if request.insert is not None:
                self._insert(request, request.insert, query_id)
            else:
                self._query(request, query_id)
        except _InjectedStatus as exc:
            self._send(exc.status, f"{exc.status} injected by the test rig\n".encode(), {})
        except RigError as exc:
            self._error(exc.code, str(exc), query_id)
        except Exception as exc:
            message = str(exc)
            found = _ERROR_CODE.search(message)
            code = int(found.group(1)) if found else 1001
            if not message.startswith("Code:"):
                message = f"Code: {code}. DB::Exception: {message}. (STD_EXCEPTION)"
            self._error(code, message, query_id)

    def _request(self, params: dict[str, str], body: bytes) -> _Request:
        """The statement of a request, from the URL, a form or the body, and the data that follows it."""
        body = _decompress(body, self.headers.get("Content-Encoding"))
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            # clickhouse-connect moves the query and its parameters into a form when they would make
            # the URL too long (more than 4 KB of parameters), as ClickHouse's HTTP interface allows.
            params.update(_form_fields(content_type, body))
            body = b""
        sql = params.get("query", "")
        insert = _INSERT_WITH_FORMAT.match(sql) if sql else None
        if insert is None and not sql:
            body_insert = _BODY_INSERT.match(body)
            if body_insert is not None:
                sql = body_insert.group(0).decode()
                insert = _INSERT_WITH_FORMAT.match(sql)
                body = body[body_insert.end() :]
        return _Request(
            params=params,
            database=params.get("database") or self.headers.get("X-ClickHouse-Database"),
            bound={key[6:]: value for key, value in params.items() if key.startswith("param_")},
            sql=sql,
            body=body,
            insert=insert,
        )

    def _insert(self, request: _Request, insert: re.Match[str], query_id: str) -> None:
        fault = self.faults.take(request.sql, request.database)
        if fault is not None and not fault.applied:
            raise _fault_error(fault)
        if _INPUT_FUNCTION.search(insert.group(1)):
            summary = self.engine.insert_select(
                insert.group(1), insert.group(2), request.body, request.database
            )
        else:
            summary = self.engine.insert(insert.group(1), insert.group(2), request.body, request.database)
        if fault is not None:
            raise _fault_error(fault)
        self._send(200, b"", self._headers(query_id, summary, "TabSeparated"))

    def _query(self, request: _Request, query_id: str) -> None:
        sql, body, params = request.sql, request.body, request.params
        if body:
            sql = f"{sql}\n{body.decode()}" if sql else body.decode()
        if not sql.strip():
            raise RigError(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
        kill = _KILL.match(sql)
        if kill is not None:
            self._kill(kill.group("literal") or request.bound.get(kill.group("param") or "", ""), query_id)
            return
        fault = self.faults.take(sql, request.database)
        if fault is not None and not fault.applied:
            raise _fault_error(fault)
        trailing = _TRAILING_FORMAT.search(sql)
        fmt = trailing.group(1) if trailing else params.get("default_format") or "TabSeparated"
        if params.get("readonly", "0") != "0" and not _READ.match(sql):
            # ClickHouse refuses it for this request only; applied to the rig's one session, readonly
            # would outlive the statement, so the rig refuses it without running it.
            raise RigError(164, "Code: 164. DB::Exception: Cannot execute query in readonly mode. (READONLY)")
        data, summary = self._run(_with_limits(sql, trailing, params), fmt, request, query_id)
        if fault is not None:
            raise _fault_error(fault)
        self._send(200, data, self._headers(query_id, summary, fmt))

    def _run(self, sql: str, fmt: str, request: _Request, query_id: str) -> tuple[bytes, dict[str, Any]]:
        """Run a statement as a query the client may kill (``KILL QUERY``) while it runs."""
        stop = self.engine.running.enter(query_id)
        try:
            self.engine.running.wait_if_slow(request.bound, stop)
            return self.engine.run(sql, fmt, request.bound, request.database)
        except Cancelled:
            raise RigError(
                394, "Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)"
            ) from None
        finally:
            self.engine.running.leave(query_id)

    def _kill(self, target: str, query_id: str) -> None:
        stopped = self.engine.running.kill(target)
        rows = f"finished\t{target}\tdefault\t\n".encode() if stopped else b""
        self._send(200, rows, self._headers(query_id, {"read_rows": 0, "read_bytes": 0}, "TabSeparated"))

    def _headers(self, query_id: str, summary: dict[str, Any], fmt: str) -> dict[str, str]:
        text = fmt.startswith(_TEXT_FORMATS)
        return {
            "Content-Type": "text/plain; charset=UTF-8" if text else "application/octet-stream",
            "X-ClickHouse-Server-Display-Name": "tapwire-test-rig",
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Summary": json.dumps(
                {key: str(value) for key, value in summary.items()} | {"total_rows_to_read": "0"}
            ),
        }

    def _error(self, code: int, message: str, query_id: str) -> None:
        text = f"{message} (version {self.engine.version} (test rig))\n".encode()
        self._send(
            500,
            text,
            {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(code),
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Server-Display-Name": "tapwire-test-rig",
            },
        )

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _with_limits(sql: str, trailing: re.Match[str] | None, params: dict[str, str]) -> str:
    """``sql`` with the URL's cost-limit settings as a ``SETTINGS`` clause (before its ``FORMAT``)."""
    limits = {key: value for key, value in params.items() if key in LIMIT_SETTINGS}
    if not limits:
        return sql
    clause = " SETTINGS " + ", ".join(f"{key} = {_setting_literal(value)}" for key, value in limits.items())
    if trailing is None:
        return sql.rstrip().rstrip(";") + clause
    return sql[: trailing.start()].rstrip() + clause + "\n" + sql[trailing.start() :]


def _setting_literal(value: str) -> str:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def serve(data: Path, port: int, slow: dict[str, float] | None = None) -> None:
    engine = Engine(data, slow)
    handler = type("BoundHandler", (Handler,), {"engine": engine, "faults": Faults()})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write(f"LISTENING {server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.session.close()


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    import email.parser
    import email.policy

    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description="TEST RIG: ClickHouse HTTP interface over chDB")
    parser.add_argument("--data", type=Path, required=True, help="chDB data directory")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument(
        "--slow-param",
        action="append",
        default=[],
        metavar="VALUE=SECONDS",
        help="statements binding a parameter equal to VALUE wait SECONDS first (stoppable by KILL QUERY)",
    )
    args = parser.parse_args()
    slow = {value: float(seconds) for value, _, seconds in (item.rpartition("=") for item in args.slow_param)}
    serve(args.data, args.port, slow)


if __name__ == "__main__":
    main()

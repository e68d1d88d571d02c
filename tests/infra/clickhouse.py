"""The warehouse for the test suite: in-process chDB and ClickHouse over HTTP (the chDB-backed test rig).

- ``clickhouse_rig`` (session): base URL (``http://default:@127.0.0.1:PORT``) of ``tests/rig/clickhouse_http.py``
  running as a subprocess on its own chDB directory. A subprocess because chDB allows one engine per process
  and this process has its own (``chdb_path``).
- ``clickhouse_database_url`` (function): the rig URL with a fresh, empty database in its path; dropped after.
- ``rig_faults(url, fault)``, ``clear_rig_faults(url)``: make the rig fail statements on purpose (a ClickHouse error code, or an HTTP
  status as a proxy answers), for tests of how clients classify server errors.
- ``chdb_path`` (session): the data directory of this process's chDB engine.
- ``warehouse_factory`` (function): ``await warehouse_factory("chdb" | "clickhouse")`` gives a started
  warehouse on a fresh database of that engine; closed and dropped after the test.

Nothing starts unless a test asks. Tests using these fixtures must be marked ``integration``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from tapwire_core.warehouse import Warehouse
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse

Engine = Literal["chdb", "clickhouse"]
WarehouseFactory = Callable[[Engine], Awaitable[Warehouse]]
ENGINES: tuple[Engine, ...] = ("chdb", "clickhouse")

_FIXTURES = ("clickhouse_rig", "clickhouse_database_url", "chdb_path", "warehouse_factory")
_START_TIMEOUT_S = 60.0
_REPO_ROOT = Path(__file__).resolve().parents[2]


def pytest_runtest_setup(item: pytest.Item) -> None:
    fixtures = getattr(item, "fixturenames", ())
    if any(name in fixtures for name in _FIXTURES) and item.get_closest_marker("integration") is None:
        pytest.fail(
            f"{item.nodeid} uses the warehouse but is not marked @pytest.mark.integration", pytrace=False
        )


def rig_statement(base_url: str, sql: str) -> None:
    """Run one statement on the rig with no database selected (creating and dropping test databases)."""
    address = base_url.split("@", 1)[1]
    request = urllib.request.Request(f"http://{address}/", data=sql.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def rig_faults(base_url: str, fault: dict[str, Any] | None = None) -> list[int]:
    """Add ``fault`` (when given) to the rig's injected faults (``tests/rig/clickhouse_http.py``); answers how
    many statements each fault in force has failed so far, in the order they were added."""
    address = base_url.split("@", 1)[1].split("/", 1)[0]
    if fault is not None:
        request = urllib.request.Request(
            f"http://{address}/rig/faults", data=json.dumps(fault).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
    with urllib.request.urlopen(f"http://{address}/rig/faults", timeout=30) as response:
        counts: list[int] = json.loads(response.read())
    return counts


def clear_rig_faults(base_url: str) -> None:
    """Remove every fault injected into the rig."""
    address = base_url.split("@", 1)[1].split("/", 1)[0]
    request = urllib.request.Request(f"http://{address}/rig/faults", method="DELETE")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


class RigProcess:
    """The rig as a subprocess on one chDB directory; ``kill()`` and ``start()`` again keep its port and data.
    ``slow``: statements binding one of these values wait that many seconds first (the rig's ``--slow-param``)."""

    def __init__(self, data: Path, *, slow: dict[str, float] | None = None) -> None:
        self.data = data
        self.slow = slow or {}
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://default:@127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (on the port of the previous run, if any) and wait until it listens."""
        env = os.environ | {"PYTHONPATH": str(_REPO_ROOT)}
        log = self.data / "rig.log"
        args = [sys.executable, "-m", "tests.rig.clickhouse_http", "--data", str(self.data / "chdb")]
        args += [
            arg for value, seconds in self.slow.items() for arg in ("--slow-param", f"{value}={seconds}")
        ]
        if self.port:
            args += ["--port", str(self.port)]
        with open(log, "ab") as stderr:
            self._proc = subprocess.Popen(
                args, cwd=_REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr
            )
        self.port = _await_port(self._proc, log)

    def kill(self) -> None:
        """SIGKILL, as a crash: connections drop, statements in flight never answer."""
        self._end(graceful=False)

    def stop(self) -> None:
        self._end(graceful=True)

    def _end(self, *, graceful: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if graceful:
            proc.terminate()
        else:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def running_rig(data: Path, *, slow: dict[str, float] | None = None) -> Iterator[str]:
    """The rig as a subprocess on ``data``; yields its base URL and stops it on exit (``slow``: see
    :class:`RigProcess`)."""
    rig = RigProcess(data, slow=slow)
    try:
        rig.start()
        yield rig.url
    finally:
        rig.stop()


@pytest.fixture(scope="session")
def clickhouse_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_rig(tmp_path_factory.mktemp("clickhouse-rig")) as url:
        yield url


def _await_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + _START_TIMEOUT_S
    # A selector (epoll), not select(): late in the suite the pipe's descriptor may be above 1,023.
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(0.2):
                line = proc.stdout.readline().decode()
                if line.startswith("LISTENING "):
                    return int(line.split()[1])
            if proc.poll() is not None:
                break
    proc.kill()
    pytest.fail(f"the ClickHouse HTTP rig did not start: {log.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def clickhouse_database_url(clickhouse_rig: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    rig_statement(clickhouse_rig, f"CREATE DATABASE {name}")
    yield f"{clickhouse_rig}/{name}"
    rig_statement(clickhouse_rig, f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb") / "engine"


@pytest.fixture
async def warehouse_factory(
    request: pytest.FixtureRequest, chdb_path: Path
) -> AsyncIterator[WarehouseFactory]:
    opened: list[Warehouse] = []

    async def make(engine: Engine) -> Warehouse:
        name = f"t_{uuid.uuid4().hex[:12]}"
        warehouse: Warehouse
        if engine == "chdb":
            warehouse = ChdbWarehouse(chdb_path, database=name)
        else:
            rig = request.getfixturevalue("clickhouse_rig")
            warehouse = ClickHouseWarehouse(f"{rig}/{name}")
        await warehouse.start()
        opened.append(warehouse)
        return warehouse

    yield make
    for warehouse in opened:
        await warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
        await warehouse.close()

"""The warehouse for the test suite: in-process chDB and ClickHouse over HTTP (the chDB-backed test rig).

- ``clickhouse_rig`` (session): base URL (``http://default:@127.0.0.1:PORT``) of ``tests/rig/clickhouse_http.py``
  running as a subprocess on its own chDB directory. A subprocess because chDB allows one engine per process
  and this process has its own (``chdb_path``).
- ``clickhouse_database_url`` (function): the rig URL with a fresh, empty database in its path; dropped after.
- ``chdb_path`` (session): the data directory of this process's chDB engine.
- ``warehouse_factory`` (function): ``await warehouse_factory("chdb" | "clickhouse")`` gives a started
  warehouse on a fresh database of that engine; closed and dropped after the test.

Nothing starts unless a test asks. Tests using these fixtures must be marked ``integration``.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Literal

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


@contextlib.contextmanager
def running_rig(data: Path, *, slow: dict[str, float] | None = None) -> Iterator[str]:
    """The rig as a subprocess on ``data``; yields its base URL and stops it on exit. ``slow``: statements
    binding one of these values wait that many seconds first (the rig's ``--slow-param``)."""
    env = os.environ | {"PYTHONPATH": str(_REPO_ROOT)}
    log = data / "rig.log"
    knobs = [arg for value, seconds in (slow or {}).items() for arg in ("--slow-param", f"{value}={seconds}")]
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.rig.clickhouse_http", "--data", str(data / "chdb"), *knobs],
            cwd=_REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        port = _await_port(proc, log)
        yield f"http://default:@127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="session")
def clickhouse_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_rig(tmp_path_factory.mktemp("clickhouse-rig")) as url:
        yield url


def _await_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
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

"""PostgreSQL for the test suite: a throwaway cluster started on first use, one fresh database per test.

``postgres_url`` (session) is a SQLAlchemy async URL of a test database. It comes from
``TAPWIRE_TEST_DATABASE_URL`` when set; otherwise the Debian server binaries run ``initdb`` into a temporary
directory and a server listens on 127.0.0.1 at a free port until the session ends. Nothing starts unless a test
asks for it. ``fresh_postgres_url`` (function) creates an empty database for one test and drops it afterwards.
Tests using either fixture must be marked ``integration``. Missing binaries fail the test: run ``make postgres``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

_FIXTURES = ("postgres_url", "fresh_postgres_url")
_SERVER_USERS = ("postgres", "nobody")
_START_TIMEOUT_S = 30.0
_TEST_DATABASE = "tapwire_test"
# Durability is worthless for a throwaway cluster; skipping it keeps tests fast on a small machine.
_SERVER_SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
    "shared_buffers=64MB",
)


@dataclass(frozen=True)
class _ServerUser:
    name: str
    uid: int
    gid: int


def pytest_runtest_setup(item: pytest.Item) -> None:
    fixtures = getattr(item, "fixturenames", ())
    if any(name in fixtures for name in _FIXTURES) and item.get_closest_marker("integration") is None:
        pytest.fail(
            f"{item.nodeid} uses PostgreSQL but is not marked @pytest.mark.integration", pytrace=False
        )


def _bin_dir() -> Path:
    override = os.environ.get("TAPWIRE_POSTGRES_BIN")
    candidates = (
        [override]
        if override
        else sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        )
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    pytest.fail(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run `make postgres`",
        pytrace=False,
    )


def _server_user() -> _ServerUser | None:
    """The unprivileged account to run the server as when we are root (postgres refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    for name in _SERVER_USERS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return _ServerUser(name, entry.pw_uid, entry.pw_gid)
    pytest.fail(
        "running as root, but neither a 'postgres' nor a 'nobody' user exists to run the server",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """One initdb'd data directory and its running server process; ``restart()`` keeps its port."""

    def __init__(self, bin_dir: Path, user: _ServerUser | None) -> None:
        self.bin_dir = bin_dir
        self._user = user
        self.root = Path(tempfile.mkdtemp(prefix="tapwire-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def _uid(self) -> int | None:
        return None if self._user is None else self._user.uid

    @property
    def _gid(self) -> int | None:
        return None if self._user is None else self._user.gid

    @property
    def _groups(self) -> list[int] | None:
        return None if self._user is None else []

    def init(self) -> None:
        self.sockets.mkdir()
        if self._user is not None:
            for path in (self.root, self.sockets):
                os.chown(path, self._user.uid, self._user.gid)
        result = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=self.root,
            capture_output=True,
            check=False,
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        if result.returncode != 0:
            pytest.fail(f"initdb failed:\n{result.stdout.decode()}\n{result.stderr.decode()}", pytrace=False)

    def start(self, *, port: int | None = None) -> None:
        """Start the server on ``port`` (a free one when None, trying three), and wait until it accepts."""
        for _attempt in range(1 if port else 3):
            self.port = port or _free_port()
            with self.log.open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        str(self.bin_dir / "postgres"),
                        "-D",
                        str(self.data),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(self.port),
                        "-k",
                        str(self.sockets),
                        *[arg for setting in _SERVER_SETTINGS for arg in ("-c", setting)],
                    ],
                    cwd=self.root,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    user=self._uid,
                    group=self._gid,
                    extra_groups=self._groups,
                )
            if self._wait_ready():
                return
            self.stop()
        pytest.fail(
            f"PostgreSQL did not start; its log:\n{self.log.read_text(errors='replace')}", pytrace=False
        )

    def _wait_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            probe = subprocess.run(
                [
                    str(self.bin_dir / "pg_isready"),
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                ],
                check=False,
            )
            if probe.returncode == 0:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, exit without waiting for clients.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def restart(self) -> None:
        """A fast shutdown, then the server again on the same port and data (sessions are dropped)."""
        self.stop()
        self.start(port=self.port)

    @property
    def url(self) -> str:
        """SQLAlchemy async URL of the ``postgres`` database as the ``postgres`` user."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def new_cluster() -> PostgresCluster:
    """An initdb'd cluster from the Debian binaries, not started yet (``start()``; ``remove()`` afterwards)."""
    cluster = PostgresCluster(_bin_dir(), _server_user())
    cluster.init()
    return cluster


async def _admin(url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE refuse to run inside one)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy async URL (``postgresql+asyncpg://``) of a database the session may use freely."""
    configured = os.environ.get("TAPWIRE_TEST_DATABASE_URL")
    if configured:
        yield make_url(configured).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        return
    cluster = new_cluster()
    try:
        cluster.start()
        created = subprocess.run(
            [
                str(cluster.bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(cluster.port),
                "-U",
                "postgres",
                _TEST_DATABASE,
            ],
            capture_output=True,
            check=False,
        )
        if created.returncode != 0:
            pytest.fail(f"createdb failed: {created.stderr.decode()}", pytrace=False)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/{_TEST_DATABASE}"
    finally:
        cluster.stop()
        cluster.remove()


@pytest.fixture
async def fresh_postgres_url(postgres_url: str) -> AsyncIterator[str]:
    """An empty database of its own for one test, on the session's server; dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    # Identifiers cannot be bound; ``name`` is generated here, never taken from input.
    await _admin(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

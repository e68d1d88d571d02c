"""The distributed suite on this machine for the soak: Kafka, PostgreSQL, the ClickHouse rig, two gateways and two
loaders, each a real process that can be killed and brought back as its supervisor (Kubernetes) would."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.credentials import CREDENTIAL_SECRET
from tests.infra.clickhouse import RigProcess, rig_statement
from tests.infra.kafka_broker import KafkaBroker, kafka_home
from tests.infra.postgres import PostgresCluster, new_cluster
from tests.integration.processes import TapwireProcess

ACCOUNT = "TAP-SOAK-0001"
PASSCODE = "soak-passcode-0123456789abcdef"
# Accounts no client uses until a fault: their first request finds no cached credential.
FRESH_ACCOUNTS = tuple((f"TAP-SOAK-NEW{n}", f"soak-fresh-passcode-{n}-0123456789") for n in range(8))
DATABASE = "tapwire_soak"


@dataclass
class SoakCluster:
    """Every process of the soak, started by ``running_cluster``."""

    workdir: Path
    kafka: KafkaBroker
    postgres: PostgresCluster
    rig: RigProcess
    env: dict[str, str]
    gateways: list[TapwireProcess] = field(default_factory=list)
    loaders: list[TapwireProcess] = field(default_factory=list)
    startup_s: float = 0.0
    fresh_accounts: list[tuple[str, str]] = field(default_factory=lambda: list(FRESH_ACCOUNTS))

    @property
    def services(self) -> list[TapwireProcess]:
        return [*self.gateways, *self.loaders]

    @property
    def clickhouse_url(self) -> str:
        return f"{self.rig.url}/{DATABASE}"

    def not_ready(self, within_s: float) -> list[str]:
        """The services that are not running, or do not answer ``/readyz`` with 200 within ``within_s``."""
        deadline = time.monotonic() + within_s
        waiting = list(self.services)
        while waiting and time.monotonic() < deadline:
            waiting = [service for service in waiting if not _ready(service)]
            if waiting:
                time.sleep(1.0)
        return [" ".join(service.args) + f" :{service.port}" for service in waiting]


def _ready(service: TapwireProcess) -> bool:
    if service.proc is None or service.proc.poll() is not None:
        return False
    try:
        return httpx.get(f"{service.url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


async def _create_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def running_cluster(*, gateways: int = 2, loaders: int = 2, partitions: int = 4) -> Iterator[SoakCluster]:
    """Start everything (databases first, then the services) and stop all of it on exit, whatever happened."""
    workdir = Path(tempfile.mkdtemp(prefix="tapwire-soak-"))
    (workdir / "kafka").mkdir()
    (workdir / "rig").mkdir()
    kafka = KafkaBroker(kafka_home(), workdir / "kafka")
    postgres = new_cluster()
    rig = RigProcess(workdir / "rig")
    cluster: SoakCluster | None = None
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(3) as pool:
            for future in [pool.submit(kafka.start), pool.submit(postgres.start), pool.submit(rig.start)]:
                future.result()
        asyncio.run(_create_database(postgres.url, DATABASE))
        rig_statement(rig.url, f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        suffix = uuid.uuid4().hex[:8]
        env = {
            "TAPWIRE_KAFKA_BOOTSTRAP": kafka.bootstrap,
            "TAPWIRE_DATABASE_URL": postgres.url.rsplit("/", 1)[0] + f"/{DATABASE}",
            "TAPWIRE_CLICKHOUSE_URL": f"{rig.url}/{DATABASE}",
            "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
            "TAPWIRE_ACCOUNTS": ",".join(
                f"{account}:{passcode}:soak-writekey-{n}-{suffix}-0123456789"
                for n, (account, passcode) in enumerate(((ACCOUNT, PASSCODE), *FRESH_ACCOUNTS))
            ),
            "TAPWIRE_TOPIC_PARTITIONS": str(partitions),
            "TAPWIRE_LOG_LEVEL": "INFO",
        }
        cluster = SoakCluster(workdir, kafka, postgres, rig, env)
        for n in range(gateways):
            cluster.gateways.append(TapwireProcess(["serve", "gateway"], env, workdir / f"gateway-{n}.log"))
        for n in range(loaders):
            cluster.loaders.append(TapwireProcess(["serve", "loader"], env, workdir / f"loader-{n}.log"))
        # All at once, as a deployment's pods start: they migrate and create topics side by side.
        for service in cluster.services:
            service.start()
        for service in cluster.services:
            service.wait_ready(timeout_s=180)
        cluster.startup_s = time.monotonic() - started
        yield cluster
    finally:
        if cluster is not None:
            for service in cluster.services:
                service.kill()
        rig.kill()
        kafka.kill()
        postgres.stop()
        postgres.remove()
        shutil.rmtree(workdir, ignore_errors=True)

"""Fixtures for the privacy tests: a controllable clock, a real control store and warehouse, the worker."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tapwire_core.control.accounts import AccountDirectory
from tapwire_core.control.store import ControlStore
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_privacy.rate_limit import SlidingWindowLimit
from tapwire_privacy.registry import Registry, default_registry
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.routes import ROUTERS as PRIVACY_ROUTERS
from tapwire_privacy.service import PrivacyService
from tapwire_privacy.worker import PrivacyWorker
from tapwire_query.routes import router as query_router
from tests.credentials import LOOKUP_DIGESTS
from tests.infra.clickhouse import WarehouseFactory


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime = dt.datetime(2026, 1, 10, 9, 0, tzinfo=dt.UTC)) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def control(tmp_path: Path) -> AsyncIterator[ControlStore]:
    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    await store.upsert_account(
        "ACC-1", passcode="passcode-1-0123456789", write_key="writekey-1-0123456789", region="eu1"
    )
    await store.upsert_account(
        "ACC-2", passcode="passcode-2-0123456789", write_key="writekey-2-0123456789", region="eu1"
    )
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def repository(control: ControlStore, clock: FakeClock) -> PrivacyRepository:
    return PrivacyRepository(control.engine, clock=clock)


@pytest.fixture
async def warehouse(warehouse_factory: WarehouseFactory) -> Warehouse:
    warehouse = await warehouse_factory("chdb")
    await migrate(warehouse, cluster=None)
    return warehouse


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        privacy_sweep_delay_s=30.0,
        privacy_poll_s=0.05,
        privacy_batch_size=500,
        # The test receivers listen on loopback: the operator's allow-list admits them.
        egress_allow="127.0.0.1/32",
    )


@dataclass
class Rig:
    control: ControlStore
    repository: PrivacyRepository
    warehouse: Warehouse
    registry: Registry
    worker: PrivacyWorker
    clock: FakeClock
    settings: Settings

    async def run_until_settled(self, max_ticks: int = 20) -> None:
        """Tick, moving the clock past every wait (the second sweep's, the bus copies' expiry), until nothing
        is claimable any more."""
        for _ in range(max_ticks):
            claimed = await self.worker.tick()
            self.clock.advance(seconds=self.settings.privacy_sweep_delay_s + 1)
            waiting = await self.repository.requests.open()
            if not claimed and all(v.status == "referred" for v in waiting):
                return
            due = [v.next_run_at for v in waiting if v.next_run_at is not None and v.status != "failed"]
            if not claimed and due:
                self.clock.now = max(self.clock.now, min(due))

    async def past_bus_copies(self) -> None:
        """Move the clock to where the last bus copy of every erasure waiting for it is gone, and tick."""
        waiting = [
            v for v in await self.repository.requests.open() if v.progress.get("phase") == "copies_expiring"
        ]
        assert waiting, "no erasure waits for its bus copies"
        self.clock.now = max(self.clock.now, *(v.next_run_at for v in waiting if v.next_run_at is not None))
        await self.worker.tick()


@pytest.fixture
def rig(
    control: ControlStore,
    repository: PrivacyRepository,
    warehouse: Warehouse,
    clock: FakeClock,
    settings: Settings,
) -> Rig:
    registry = default_registry(
        warehouse=warehouse, engine=control.engine, export_dir=settings.resolved_export_dir()
    )
    worker = PrivacyWorker(repository=repository, registry=registry, settings=settings, clock=clock)
    return Rig(control, repository, warehouse, registry, worker, clock, settings)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    client: httpx.AsyncClient
    rig: Rig
    service: PrivacyService
    monotonic: FakeMonotonic


HEADERS = {"X-CleverTap-Account-Id": "ACC-1", "X-CleverTap-Passcode": "passcode-1-0123456789"}


async def _ready() -> dict[str, bool]:
    return {"control_store": True}


@pytest.fixture
async def api(rig: Rig) -> AsyncIterator[Api]:
    monotonic = FakeMonotonic()
    service = PrivacyService(
        repository=rig.repository,
        settings=rig.settings,
        clock=rig.clock,
        intake_limit=SlidingWindowLimit(limit=3, window_s=60, clock=monotonic),
    )
    context = ServiceContext(
        settings=rig.settings,
        authenticator=AccountDirectory(rig.control),
        readiness=_ready,
        warehouse_=rig.warehouse,
        store_=rig.control,
    )
    app = create_app(context, [query_router, *PRIVACY_ROUTERS])
    app.state.privacy = service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield Api(client, rig, service, monotonic)

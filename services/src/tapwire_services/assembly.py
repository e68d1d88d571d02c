"""Which routes and background workers each service runs, in embedded mode and one by one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, FastAPI

from tapwire_core.control.privacy.suppression import SuppressionList
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.http.identity import router as identity_router
from tapwire_ingest.http.segment import router as segment_router
from tapwire_ingest.http.upload import router as upload_router
from tapwire_ingest.loader.pipeline import Loader
from tapwire_messaging.data_recipients import messaging_data_recipients
from tapwire_messaging.routes import links_router as messaging_links_router
from tapwire_messaging.routes import router as messaging_router
from tapwire_messaging.service import MessagingService
from tapwire_privacy.routes import ROUTERS as PRIVACY_ROUTERS
from tapwire_privacy.runner import PrivacyRuntime
from tapwire_query.routes import router as query_router
from tapwire_services import runtime
from tapwire_services.accounts import announce_accounts, directory_for

log = logging.getLogger(__name__)

ServiceName = Literal["gateway", "loader", "query", "messaging", "privacy-worker"]
SERVICES: tuple[ServiceName, ...] = ("gateway", "loader", "query", "messaging", "privacy-worker")


class LoaderSupervisor:
    """Runs the loader in a task and restarts it after a crash; every restart replays from the last commit."""

    def __init__(self, loader: Loader, *, max_backoff_s: float = 30.0) -> None:
        self.loader = loader
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="loader")

    async def _supervise(self) -> None:
        delay = 0.5
        while not self._stopping:
            try:
                await self.loader.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "loader crashed; restarting from the last committed offsets", extra={"retry_in_s": delay}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)

    async def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping = True
        self.loader.stop()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except Exception:  # includes TimeoutError: the loader did not drain in time
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def build_app(
    settings: Settings,
    components: runtime.Components,
    *,
    routers: Sequence[APIRouter],
    loader: bool,
    embedded: bool,
    messaging: bool = False,
    privacy_worker: bool = False,
    suppress: bool = False,
    advisory_checks: frozenset[str] = frozenset(),
) -> FastAPI:
    """An app serving ``routers`` whose lifespan starts ``components`` (and a loader, the privacy worker and
    the suppression list when asked). ``advisory_checks`` are readiness checks reported but not required."""
    context = ServiceContext(
        settings=settings,
        authenticator=directory_for(components.store),
        readiness=components.readiness,
        advisory_checks=advisory_checks,
        bus_=components.bus,
        warehouse_=components.warehouse,
        store_=components.store,
    )
    supervisor: LoaderSupervisor | None = None
    messenger = (
        MessagingService(settings, store=components.store, bus=components.bus, warehouse=components.warehouse)
        if messaging
        else None
    )
    suppressions: SuppressionList | None = None
    privacy: PrivacyRuntime | None = None

    async def on_start() -> None:
        nonlocal supervisor, suppressions, privacy
        await components.start()
        await announce_accounts(components.store, settings, embedded=embedded)
        if suppress:
            suppressions = SuppressionList(
                components.store.engine, refresh_s=settings.privacy_suppression_refresh_s
            )
            await suppressions.start()
            context.suppressions = suppressions
        if privacy_worker:
            assert components.warehouse is not None
            privacy = PrivacyRuntime.build(
                settings=settings,
                store=components.store,
                warehouse=components.warehouse,
                data_recipients=messaging_data_recipients(components.store.engine, settings),
            )
            app.state.privacy = privacy.service
            privacy.start()
        if loader:
            assert components.bus is not None and components.warehouse is not None
            supervisor = LoaderSupervisor(
                Loader(
                    bus=components.bus,
                    warehouse=components.warehouse,
                    settings=settings,
                    suppressions=suppressions,
                )
            )
            supervisor.start()
        if messenger is not None:
            await messenger.start()

    async def on_stop() -> None:
        if messenger is not None:
            await messenger.stop()
        if supervisor is not None:
            await supervisor.stop()
        if privacy is not None:
            await privacy.stop()
        if suppressions is not None:
            await suppressions.close()
        await components.close()

    app = create_app(context, routers, on_start=on_start, on_stop=on_stop)
    app.state.messaging = messenger
    return app


def embedded_app(settings: Settings) -> FastAPI:
    return build_app(
        settings,
        runtime.embedded(settings),
        routers=[
            upload_router,
            segment_router,
            identity_router,
            query_router,
            messaging_router,
            messaging_links_router,
            *PRIVACY_ROUTERS,
        ],
        loader=True,
        embedded=True,
        messaging=True,
        privacy_worker=True,
        suppress=True,
    )


@dataclass(frozen=True)
class _ServiceSpec:
    bus: bool
    warehouse: bool
    routers: tuple[APIRouter, ...]
    loader: bool
    messaging: bool = False
    privacy_worker: bool = False
    suppress: bool = False
    advisory_checks: frozenset[str] = frozenset()


_SERVICE_SPECS: dict[str, _ServiceSpec] = {
    "gateway": _ServiceSpec(
        bus=True,
        warehouse=False,
        routers=(upload_router, segment_router, identity_router),
        loader=False,
        suppress=True,
        # Ingestion needs the bus; the database only for credentials not verified yet (those answer 503).
        advisory_checks=frozenset({"control_store"}),
    ),
    "loader": _ServiceSpec(bus=True, warehouse=True, routers=(), loader=True, suppress=True),
    "query": _ServiceSpec(bus=False, warehouse=True, routers=(query_router,), loader=False),
    "messaging": _ServiceSpec(
        bus=True,
        warehouse=True,
        routers=(messaging_router, messaging_links_router),
        loader=False,
        messaging=True,
    ),
    "privacy-worker": _ServiceSpec(
        bus=False, warehouse=True, routers=PRIVACY_ROUTERS, loader=False, privacy_worker=True
    ),
}


def service_app(settings: Settings, service: ServiceName) -> FastAPI:
    """One service in distributed mode, connected only to the stores it uses."""
    spec = _SERVICE_SPECS.get(service)
    if spec is None:
        raise runtime.ConfigurationError(f"service {service!r} is not available in this release")
    if spec.messaging and not settings.messaging_secret:
        raise runtime.ConfigurationError(
            "TAPWIRE_MESSAGING_SECRET is required: every messaging process must sign links with the same secret"
        )
    return build_app(
        settings,
        runtime.distributed(settings, bus=spec.bus, warehouse=spec.warehouse),
        routers=spec.routers,
        loader=spec.loader,
        embedded=False,
        messaging=spec.messaging,
        privacy_worker=spec.privacy_worker,
        suppress=spec.suppress,
        advisory_checks=spec.advisory_checks,
    )

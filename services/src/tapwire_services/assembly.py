"""Which routes and background workers each service runs, in embedded mode and one by one.

A service is a ``ServiceSpec``: the stores it connects to, the routers it serves and its workers in start order.
``build_app`` turns a spec's parts into one app whose lifespan starts the workers and stops them in reverse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, FastAPI

from tapwire_console import web as console_web
from tapwire_console.api import ROUTERS as ACCOUNT_ROUTERS
from tapwire_core.control.bootstrap import AccountsConfigError, parse_accounts
from tapwire_core.control.console.directory import ConsoleDirectory
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.http.identity import router as identity_router
from tapwire_ingest.http.mobile_sdk import router as mobile_sdk_router
from tapwire_ingest.http.segment import router as segment_router
from tapwire_ingest.http.upload import router as upload_router
from tapwire_ingest.http.websdk import install_fast_path
from tapwire_ingest.http.websdk import router as websdk_router
from tapwire_messaging.email_feedback.routes import feedback_router as email_feedback_router
from tapwire_messaging.email_feedback.routes import suppressions_router as email_suppressions_router
from tapwire_messaging.routes import links_router as messaging_links_router
from tapwire_messaging.routes import router as messaging_router
from tapwire_privacy.routes import ROUTERS as PRIVACY_ROUTERS
from tapwire_query.routes import router as query_router
from tapwire_services import runtime
from tapwire_services.accounts import directory_for
from tapwire_services.workers import (
    AccountAnnouncement,
    Connections,
    LoaderSupervisor,
    Messaging,
    PrivacyWork,
    Suppressions,
    Wiring,
    WorkerFactory,
    WorkerGroup,
)

ServiceName = Literal["gateway", "loader", "query", "messaging", "privacy-worker", "console"]
SERVICES: tuple[ServiceName, ...] = ("gateway", "loader", "query", "messaging", "privacy-worker", "console")


@dataclass(frozen=True)
class ServiceSpec:
    """What one process runs: the stores it connects to (the control store always), the routers it serves, and
    its workers in start order (a worker may use what the ones before it started, e.g. the loader the
    suppression list)."""

    bus: bool
    warehouse: bool
    routers: tuple[APIRouter, ...] = ()
    workers: tuple[WorkerFactory, ...] = ()
    advisory_checks: frozenset[str] = frozenset()
    """Readiness checks reported but not required (see ``ServiceContext.advisory_checks``)."""
    console_pages: bool = False
    """Serves the console's web pages; they call this app's own routes, and in distributed mode the other
    services' APIs over HTTP."""
    credentials: bool = True
    """Checks passcodes or write keys, so needs ``TAPWIRE_CREDENTIAL_SECRET``."""


def build_app(
    settings: Settings,
    components: runtime.Components,
    *,
    routers: Sequence[APIRouter],
    workers: Sequence[WorkerFactory] = (),
    embedded: bool,
    advisory_checks: frozenset[str] = frozenset(),
    console_pages: bool = False,
) -> FastAPI:
    """An app serving ``routers`` (and the console's pages with ``console_pages``); its lifespan connects
    ``components``, applies the configured accounts, then starts ``workers`` in order, and stops them all in
    reverse (the connections last). ``advisory_checks`` are readiness checks reported but not required."""
    context = ServiceContext(
        settings=settings,
        authenticator=directory_for(components.store),
        readiness=components.readiness,
        advisory_checks=advisory_checks,
        bus_=components.bus,
        warehouse_=components.warehouse,
        store_=components.store,
        console=ConsoleDirectory(
            components.store,
            idle=dt.timedelta(minutes=settings.console_idle_minutes),
            lifetime=dt.timedelta(hours=settings.console_session_hours),
        ),
    )
    group = WorkerGroup()
    app = create_app(context, routers, on_start=group.start, on_stop=group.stop)
    if websdk_router in routers:
        install_fast_path(app)
    wiring = Wiring(
        settings=settings, components=components, context=context, state=app.state, embedded=embedded
    )
    factories: tuple[WorkerFactory, ...] = (Connections, AccountAnnouncement, *workers)
    for factory in factories:
        group.add(factory(wiring))
    if console_pages:
        console_web.mount(app, settings, embedded=embedded)
    return app


EMBEDDED = ServiceSpec(
    bus=True,
    warehouse=True,
    routers=(
        upload_router,
        segment_router,
        identity_router,
        websdk_router,
        mobile_sdk_router,
        query_router,
        messaging_router,
        messaging_links_router,
        email_feedback_router,
        email_suppressions_router,
        *PRIVACY_ROUTERS,
        *ACCOUNT_ROUTERS,
    ),
    workers=(Suppressions, PrivacyWork, LoaderSupervisor, Messaging),
    console_pages=True,
)

SERVICE_SPECS: dict[ServiceName, ServiceSpec] = {
    "gateway": ServiceSpec(
        bus=True,
        warehouse=False,
        routers=(upload_router, segment_router, identity_router, websdk_router, mobile_sdk_router),
        workers=(Suppressions,),
        # Ingestion needs the bus; the database only for credentials not verified yet (those answer 503).
        advisory_checks=frozenset({"control_store"}),
    ),
    "loader": ServiceSpec(
        bus=True, warehouse=True, workers=(Suppressions, LoaderSupervisor), credentials=False
    ),
    "query": ServiceSpec(bus=False, warehouse=True, routers=(query_router,)),
    "messaging": ServiceSpec(
        bus=True,
        warehouse=True,
        routers=(messaging_router, messaging_links_router, email_feedback_router, email_suppressions_router),
        workers=(Messaging,),
    ),
    "privacy-worker": ServiceSpec(bus=False, warehouse=True, routers=PRIVACY_ROUTERS, workers=(PrivacyWork,)),
    "console": ServiceSpec(bus=False, warehouse=False, routers=ACCOUNT_ROUTERS, console_pages=True),
}


def check_accounts(settings: Settings) -> None:
    """Refuse a malformed ``TAPWIRE_ACCOUNTS`` (e.g. a secret under 16 characters) before anything starts, with
    the parser's message, which names the entry and account and never a secret."""
    if settings.accounts and settings.accounts.strip():
        try:
            parse_accounts(settings.accounts, default_region=settings.region)
        except AccountsConfigError as exc:
            raise runtime.ConfigurationError(str(exc)) from exc


def embedded_app(settings: Settings) -> FastAPI:
    """Every service in one process on the embedded stores (``tapwire up``), the console's pages included."""
    check_accounts(settings)
    return build_app(
        settings,
        runtime.embedded(settings),
        routers=EMBEDDED.routers,
        workers=EMBEDDED.workers,
        embedded=True,
        console_pages=EMBEDDED.console_pages,
    )


def service_app(settings: Settings, service: ServiceName) -> FastAPI:
    """One service in distributed mode, connected only to the stores it uses."""
    spec = SERVICE_SPECS.get(service)
    if spec is None:
        raise runtime.ConfigurationError(f"service {service!r} is not available in this release")
    check_accounts(settings)
    if spec.console_pages and not settings.console_secret:
        raise runtime.ConfigurationError(
            "TAPWIRE_CONSOLE_SECRET is required: every console replica must sign cookies with the same secret"
        )
    if Messaging in spec.workers and not settings.messaging_secret:
        raise runtime.ConfigurationError(
            "TAPWIRE_MESSAGING_SECRET is required: every messaging process must sign links with the same secret"
        )
    return build_app(
        settings,
        runtime.distributed(settings, bus=spec.bus, warehouse=spec.warehouse, credentials=spec.credentials),
        routers=spec.routers,
        workers=spec.workers,
        embedded=False,
        advisory_checks=spec.advisory_checks,
        console_pages=spec.console_pages,
    )

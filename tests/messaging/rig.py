"""A messaging process in the test's event loop: real SQLite control store, embedded bus, chDB warehouse,
local SMTP sink; driven over HTTP through the app's ASGI interface."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from tapwire_core.bus import Bus
from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.clock import Clock, system_clock
from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.channels import Providers
from tapwire_messaging.email_feedback.routes import feedback_router, suppressions_router
from tapwire_messaging.email_feedback.runtime import SnsFetching
from tapwire_messaging.routes import links_router as messaging_links_router
from tapwire_messaging.routes import router as messaging_router
from tapwire_messaging.service import MessagingService
from tapwire_services import runtime
from tapwire_services.assembly import build_app
from tapwire_services.workers import Messaging
from tests.credentials import LOOKUP_DIGESTS

ACCOUNT, PASSCODE = "TAP-MSG-0001", "passcode-messaging-0123456789"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
SECRET = "messaging-test-secret-0123456789"


@dataclass
class Rig:
    app: FastAPI
    client: httpx.AsyncClient
    warehouse: Warehouse
    settings: Settings

    @property
    def service(self) -> MessagingService:
        service: MessagingService = self.app.state.messaging
        return service

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(path, headers=HEADERS, json=body)


def settings_for(tmp: Path, smtp_url: str | None, **extra: Any) -> Settings:
    # The test receivers listen on loopback: the operator's allow-list admits them.
    defaults: dict[str, Any] = {"messaging_poll_s": 0.05, "egress_allow": "127.0.0.1/32"}
    return Settings(
        data_dir=tmp / "data",
        accounts=f"{ACCOUNT}:{PASSCODE}:writekey-messaging-0123456789",
        smtp_url=smtp_url,
        email_from="news@shop.example",
        messaging_secret=SECRET,
        public_url="https://t.shop.example",
        **(defaults | extra),
    )


@asynccontextmanager
async def messaging_rig(
    tmp: Path,
    warehouse: Warehouse,
    settings: Settings,
    *,
    clock: Clock | None = None,
    sns_fetching: SnsFetching | None = None,
    providers: Providers | None = None,
    bus: Bus | None = None,
    store_url: str | None = None,
) -> AsyncIterator[Rig]:
    """The messaging app on real stores; with ``clock`` the service runs on that clock instead of the wall's,
    with ``sns_fetching`` it reaches SNS certificates that way; ``bus`` replaces the embedded log in ``tmp`` and
    ``store_url`` the SQLite control store (Kafka and PostgreSQL, for the distributed path)."""
    own_service = clock is not None or sns_fetching is not None or providers is not None
    components = runtime.Components(
        settings=settings,
        store=ControlStore(
            store_url or f"sqlite+aiosqlite:///{tmp / 'control.db'}", lookup_digests=LOOKUP_DIGESTS
        ),
        bus=bus or EmbeddedBus(tmp / "log"),
        warehouse=warehouse,
    )
    app = build_app(
        settings,
        components,
        routers=[messaging_router, messaging_links_router, feedback_router, suppressions_router],
        workers=[] if own_service else [Messaging],
        embedded=False,
    )
    try:
        async with app.router.lifespan_context(app):
            if own_service:
                app.state.messaging = MessagingService(
                    settings,
                    store=components.store,
                    bus=components.bus,
                    warehouse=warehouse,
                    clock=clock or system_clock,
                    sns_fetching=sns_fetching,
                    providers=providers,
                )
                await app.state.messaging.start()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://t.shop.example") as client:
                try:
                    yield Rig(app, client, warehouse, settings)
                finally:
                    if own_service:
                        await app.state.messaging.stop()
    finally:
        await warehouse.start()  # the app closed it; the fixture that made it drops its database


async def add_profiles(warehouse: Warehouse, profiles: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Profiles straight into the warehouse tables, as the loader would have written them."""
    now = int(time.time() * 1000)
    await warehouse.insert(
        "profile_props",
        ["account_id", "user_key", "key", "value", "ts", "deleted"],
        [
            (ACCOUNT, key, name, orjson.dumps(value).decode(), now, 0)
            for key, props in profiles
            for name, value in props.items()
        ],
    )
    await warehouse.insert(
        "profiles",
        ["account_id", "user_key", "identity", "first_seen", "last_seen"],
        [(ACCOUNT, key, key[2:], now, now) for key, _ in profiles],
    )


async def add_push_tokens(
    warehouse: Warehouse,
    tokens: Sequence[tuple[str, str, str]],
    *,
    ts_ms: int | None = None,
    keys: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """(user key, token, type) as the loader stores token uploads: ``__push_token`` events (at ``ts_ms``, by
    default now). ``keys``: a web push subscription's keys by its token (its endpoint)."""
    now = ts_ms or int(time.time() * 1000)
    columns = [
        "account_id",
        "event_id",
        "user_key",
        "name",
        "ts",
        "received_at",
        "source",
        "properties",
        "context",
    ]
    await warehouse.insert(
        "events",
        columns,
        [
            (
                ACCOUNT,
                f"tok-{key}-{token}-{now}",
                key,
                "__push_token",
                now,
                now,
                "clevertap",
                orjson.dumps(
                    {"id": token, "type": kind, **({"keys": keys[token]} if keys and token in keys else {})}
                ).decode(),
                "{}",
            )
            for key, token, kind in tokens
        ],
    )


async def wait_finished(rig: Rig, campaign_id: int, timeout_s: float = 180) -> dict[str, Any]:
    """The native campaign view once the campaign completed or stopped and nothing is in flight."""
    import asyncio

    campaign: dict[str, Any] = {}
    for _ in range(int(timeout_s / 0.05)):
        response = await rig.client.get(f"/messaging/v1/campaigns/{campaign_id}", headers=HEADERS)
        campaign = response.json()["campaign"]
        if campaign["status"] in ("completed", "stopped") and campaign["pending"] == 0:
            return campaign
        await asyncio.sleep(0.05)
    raise AssertionError(f"campaign {campaign_id} did not finish: {campaign}")

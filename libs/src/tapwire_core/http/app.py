"""The app factory: one FastAPI app per process, its state injected, its lifespan owning every connection."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tapwire_core import metrics
from tapwire_core.http import health
from tapwire_core.http.audit_trail import AuditTrail
from tapwire_core.http.body_budget import BodyBudget, BodyBudgetMiddleware
from tapwire_core.http.context import ServiceContext
from tapwire_core.http.errors import install_error_handlers
from tapwire_core.http.proxies import TrustedProxies, TrustedProxyMiddleware, parse_networks, see_through

Hook = Callable[[], Awaitable[None]]


class ServiceApp(FastAPI):
    """The FastAPI app of a service, with fast lanes: a ``(method, path)`` pair answered by a plain ASGI callable
    ahead of the framework's own layers (its telemetry, error and body-limit middleware, the app's middleware and
    router), which cost about as much as a small request's own work.

    A lane sees the client's address as every route does (the trusted proxies are applied first) and owns what
    the skipped layers would have done for it: answering its own errors, counting itself in the request metrics,
    reading no body it has not bounded.
    """

    def __init__(self, *, trusted_proxies: TrustedProxies, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trusted_proxies = trusted_proxies
        self._lanes: dict[tuple[str, str], ASGIApp] = {}

    def add_fast_lane(self, method: str, path: str, lane: ASGIApp) -> None:
        self._lanes[(method, path)] = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._lanes and scope["type"] == "http":
            lane = self._lanes.get((scope["method"], scope["path"]))
            if lane is not None:
                see_through(self.trusted_proxies, scope)
                scope["app"] = self
                await lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class RequestMetrics:
    """Counts requests by matched route template (bounded label set) and status; pure ASGI for low overhead."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            metrics.HTTP_REQUESTS.labels(template, str(status)).inc()
            metrics.HTTP_LATENCY.labels(template).observe(time.perf_counter() - started)


def create_app(
    context: ServiceContext,
    routers: Sequence[APIRouter],
    *,
    on_start: Hook | None = None,
    on_stop: Hook | None = None,
    title: str = "tapwire",
) -> ServiceApp:
    """Build an app serving ``routers`` plus health endpoints.

    ``on_start`` runs before the first request is served (connect, migrate, start background workers);
    ``on_stop`` after the last (drain, close).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if on_start is not None:
            await on_start()
        try:
            yield {}
        finally:
            if on_stop is not None:
                await on_stop()

    proxies = TrustedProxies(parse_networks(context.settings.trusted_proxies))
    app = ServiceApp(
        trusted_proxies=proxies,
        title=title,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.context = context
    install_error_handlers(app)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    if context.body_budget is None:
        context.body_budget = BodyBudget(context.settings.body_memory_bytes)
    app.add_middleware(BodyBudgetMiddleware, budget=context.body_budget)
    app.add_middleware(AuditTrail)
    app.add_middleware(RequestMetrics)
    # Outermost, so everything after it (limits, authentication, logs) sees the client's real address.
    app.add_middleware(TrustedProxyMiddleware, proxies=proxies)
    return app

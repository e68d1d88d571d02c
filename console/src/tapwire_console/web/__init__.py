"""The console's web pages: server-rendered Jinja2, small htmx updates, every asset served from here."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from tapwire_console.web.frame import ConsoleWeb, PageFailed, SignInRequired, console_web, redirect, render
from tapwire_console.web.pages import (
    campaigns,
    events,
    me,
    overview,
    privacy,
    profiles,
    segments,
    settings,
    sign_in,
)
from tapwire_console.web.security import SECURITY_HEADERS, load_or_create_secret
from tapwire_core.settings import Settings

STATIC = Path(__file__).parent / "static"
PAGE_ROUTERS = (
    sign_in.router,
    overview.router,
    events.router,
    profiles.router,
    segments.router,
    campaigns.router,
    privacy.router,
    settings.router,
    me.router,
)


class _Static(StaticFiles):
    """Static assets with the console's security headers and a day of caching."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k != "Cache-Control"})
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def mount(app: FastAPI, settings: Settings, *, embedded: bool) -> ConsoleWeb:
    """Serve the pages on ``app``; their API calls go through ``app`` itself (and remote services when
    ``embedded`` is False)."""
    web = ConsoleWeb.build(
        settings,
        load_or_create_secret(settings.console_secret, settings.data_dir.resolve()),
        embedded=embedded,
    )
    web.gateway.attach(app)
    app.state.console_web = web
    app.mount("/console/static", _Static(directory=STATIC), name="console-static")
    for router in PAGE_ROUTERS:
        app.include_router(router, include_in_schema=False)

    async def on_sign_in_required(request: Request, _: Exception) -> Response:
        if request.headers.get("hx-request") == "true":
            return Response(status_code=401, headers={**SECURITY_HEADERS, "HX-Redirect": "/console"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(
            request, f"/console?next={quote(target, safe='')}" if request.method == "GET" else "/console"
        )

    async def on_page_failed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageFailed)
        status = exc.result.status if exc.result.status in (400, 403, 404, 409, 422, 429) else 503
        return render(
            console_web(request), "failed.html", status=status, message=exc.result.error, code=status
        )

    app.add_exception_handler(SignInRequired, on_sign_in_required)
    app.add_exception_handler(PageFailed, on_page_failed)
    return web

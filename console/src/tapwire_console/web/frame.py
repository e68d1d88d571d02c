"""What every page shares: the console's state on the app, who is signed in, CSRF checks, rendering."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tapwire_console.web.api_client import ApiClient, ApiGateway, ApiResult
from tapwire_console.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Signer,
    same_origin,
)
from tapwire_core.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"
NAV = (
    ("Overview", "/console"),
    ("Events", "/console/events"),
    ("Profiles", "/console/profiles"),
    ("Segments", "/console/segments"),
    ("Campaigns", "/console/campaigns"),
    ("Privacy", "/console/privacy"),
    ("Settings", "/console/settings"),
)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["thousands"] = lambda n: f"{int(n or 0):,}"
    env.filters["when"] = _when
    env.filters["moment"] = _moment
    return env


def _moment(iso: str | None) -> str:
    """An API timestamp (ISO 8601, UTC) as people read it."""
    if not iso:
        return "—"
    try:
        parsed = dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _when(epoch_ms: int | None) -> str:
    if not epoch_ms:
        return "—"
    return dt.datetime.fromtimestamp(int(epoch_ms) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class ConsoleWeb:
    """Held on ``app.state.console_web``."""

    settings: Settings
    signer: Signer
    gateway: ApiGateway
    templates: Environment

    @classmethod
    def build(cls, settings: Settings, secret: bytes, *, embedded: bool) -> ConsoleWeb:
        return cls(settings, Signer(secret), ApiGateway(settings, embedded=embedded), _environment())


def console_web(request: Request) -> ConsoleWeb:
    web: ConsoleWeb = request.app.state.console_web
    return web


Web = Annotated[ConsoleWeb, Depends(console_web)]


@dataclass(frozen=True)
class Viewer:
    """The signed-in person as the pages see them: their API client, role and CSRF token."""

    api: ApiClient
    token: str
    role: str
    account_id: str
    email: str | None
    name: str
    csrf: str

    def can(self, *roles: str) -> bool:
        return self.role in roles


class SignInRequired(Exception):
    """No live session: the page answers with the sign-in form (or a redirect to it)."""


class PageFailed(Exception):
    """An API answered with an error the page cannot show in place (403, 404, 503)."""

    def __init__(self, result: ApiResult) -> None:
        super().__init__(result.error)
        self.result = result


def client_host(request: Request) -> str:
    return request.client.host if request.client is not None else ""


async def current_viewer(request: Request, web: Web) -> Viewer:
    token = web.signer.session_token(request.cookies.get(SESSION_COOKIE))
    if token is None:
        raise SignInRequired
    api = web.gateway.client(token=token, client_host=client_host(request))
    me = await api.get("/account/v1/me")
    if me.status == 401:
        raise SignInRequired
    if not me.ok:
        raise PageFailed(me)
    user = me.body.get("user") or {}
    return Viewer(
        api=api,
        token=token,
        role=str(me.body["role"]),
        account_id=str(me.body["account"]["id"]),
        email=user.get("email"),
        name=user.get("name") or "Account admin (passcode)",
        csrf=web.signer.csrf_for(token),
    )


SignedIn = Annotated[Viewer, Depends(current_viewer)]


async def checked_change(request: Request, viewer: SignedIn, web: Web) -> Viewer:
    """A signed-in state change: same origin and a valid CSRF token (form field or header), else 403."""
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = str((await request.form()).get(CSRF_FIELD) or "")
    if not same_origin(request) or not web.signer.csrf_valid(viewer.token, given):
        raise PageFailed(
            ApiResult(403, {"message": "This form expired or came from another site; reload the page."})
        )
    return viewer


Change = Annotated[Viewer, Depends(checked_change)]


def render(
    web: ConsoleWeb,
    template: str,
    *,
    viewer: Viewer | None = None,
    status: int = 200,
    active: str | None = None,
    **context: Any,
) -> HTMLResponse:
    html = web.templates.get_template(template).render(
        viewer=viewer, nav=NAV, active=active, csrf_field=CSRF_FIELD, **context
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def redirect(request: Request, url: str) -> Response:
    """After a form post: 303 so the browser follows with GET; an htmx request is told to navigate instead."""
    if request.headers.get("hx-request") == "true":
        return Response(status_code=200, headers={**SECURITY_HEADERS, "HX-Redirect": url})
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def form_value(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""

"""Every route that takes a body authenticates before reading it: a caller without valid credentials costs no
body read. The public routes that do read (an end user's privacy request, a write key carried in the body) are
listed, with the bounds that make them safe."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import create_async_engine

from tapwire_core.egress import EgressPolicy
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.http.identity import router as identity_router
from tapwire_ingest.http.segment import router as segment_router
from tapwire_ingest.http.upload import router as upload_router
from tapwire_messaging.email_feedback.routes import feedback_router, suppressions_router
from tapwire_messaging.email_feedback.runtime import EmailFeedback
from tapwire_messaging.feedback import FeedbackPublisher
from tapwire_messaging.routes import links_router
from tapwire_messaging.routes import router as messaging_router
from tapwire_privacy.routes import ROUTERS as PRIVACY_ROUTERS
from tapwire_query.routes import router as query_router
from tests.fakes import FakeAccount, FakeAuthenticator, RecordingBus

# Public routes that read a body without credentials, each bounded: small caps, a rate limit or a token.
PUBLIC_BODY_ROUTES = {
    "/privacy/v1/intake/{account_id}",  # 16 KiB, rate-limited per account and per client address
    "/m/u/{token}",  # the signed link is the credential; the body is never read
    # Provider webhooks whose signature is inside the body: 512 KiB / 256 KiB, charged to the client's address,
    # and a 404 on deployments that did not configure the provider.
    "/messaging/v1/email-feedback/ses",
    "/messaging/v1/email-feedback/mailgun",
}
SENDGRID_KEY = base64.b64encode(
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()
WRONG_CREDENTIALS = {
    "X-CleverTap-Account-Id": "A",
    "X-CleverTap-Passcode": "wrong",
    "Authorization": "Basic " + base64.b64encode(b"wrong-key:").decode(),
}


async def _ready() -> dict[str, bool]:
    return {}


def every_router_app() -> FastAPI:
    context = ServiceContext(
        settings=Settings(),
        authenticator=FakeAuthenticator({"A": ("right", FakeAccount("A"))}, {"right-key": FakeAccount("A")}),
        readiness=_ready,
        bus_=RecordingBus(),
    )
    routers = [upload_router, segment_router, identity_router, query_router, messaging_router, links_router]
    routers += [feedback_router, suppressions_router]
    app = create_app(context, [*routers, *PRIVACY_ROUTERS])
    # The email feedback routes authenticate with the deployment's provider credentials; configure them all.
    settings = Settings(
        bounce_intake_token="intake-token",
        postmark_webhook_secret="postmark-secret",
        sendgrid_webhook_public_key=SENDGRID_KEY,
        mailgun_signing_key="mailgun-key",
    )
    app.state.messaging = SimpleNamespace(
        email_feedback=EmailFeedback(
            settings,
            engine=create_async_engine("sqlite+aiosqlite://"),
            publisher=FeedbackPublisher(None, "unused"),
            secret=b"secret",
            egress=EgressPolicy(),
            now_ms=lambda: 0,
        )
    )
    return app


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every endpoint, through the routers an app includes (no prefixes are used)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found.extend(api_routes(included.routes))
    return found


def body_routes() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in api_routes(every_router_app().routes):
        assert route.methods is not None, route.path
        if route.path not in PUBLIC_BODY_ROUTES:
            found.extend((method, route.path) for method in sorted(route.methods & {"POST", "PUT", "PATCH"}))
    return found


def unauthenticated_cases() -> list[tuple[str, str, str]]:
    """Each body route with no credentials and with wrong ones. Without a header, ``/v1/*`` looks for the write
    key in the body: that case has its own test below."""
    return [
        (method, path, credentials)
        for method, path in body_routes()
        for credentials in ("none", "wrong")
        if not (credentials == "none" and path.startswith("/v1/"))
    ]


async def call(app: FastAPI, method: str, path: str, headers: dict[str, str]) -> tuple[int, bool]:
    """The response status, and whether the app pulled the request's body."""
    pulled = False
    body = b'{"d": [], "batch": [], "type": "erasure"}'

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled = True
        return {"type": "http.request", "body": body, "more_body": False}

    statuses: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw_headers,
        "client": ("192.0.2.7", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return statuses[0], pulled


def test_the_check_covers_every_service() -> None:
    paths = {path for _, path in body_routes()}
    for expected in ("/1/upload", "/v1/batch", "/1/counts/events.json", "/1/targets/create.json"):
        assert expected in paths
    assert "/privacy/v1/requests/{request_id}/deny" in paths
    for provider in ("mime", "postmark", "sendgrid"):
        assert f"/messaging/v1/email-feedback/{provider}" in paths


@pytest.mark.parametrize(("method", "path", "credentials"), unauthenticated_cases())
async def test_unauthenticated_requests_cost_no_body_read(method: str, path: str, credentials: str) -> None:
    concrete = path.replace("{", "").replace("}", "")
    headers = WRONG_CREDENTIALS if credentials == "wrong" else {}
    status, pulled = await call(every_router_app(), method, concrete, headers)
    assert status == 401
    assert not pulled, f"{method} {path} read the body of an unauthenticated request"


async def test_a_write_key_in_the_body_is_found_without_decoding_the_body() -> None:
    """Browsers put the key in the body: it is read (within the batch cap) but a wrong key decodes nothing else."""
    status, pulled = await call(every_router_app(), "POST", "/v1/batch", {})
    assert (status, pulled) == (401, True)

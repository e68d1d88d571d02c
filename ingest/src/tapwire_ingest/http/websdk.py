"""``GET /a``: CleverTap's Web SDK (``clevertap-web-sdk``), unchanged, sending to ``<region>.<your domain>``.

The SDK loads ``/a?t=96&type=…&d=…`` as a script (JSONP) or, with ``enableFetchApi``, fetches it expecting
JSON; both get the device id and session it waits for (``clevertap_sdk.answers``). Until the first answer gives
a browser its device id the SDK holds every later request back, so that answer must come even when the
request's record is refused: a refused record is reported in the answer, and only a failure of the request
itself (unknown account, rate limit, unreadable payload, bus down) answers with an error status and the JSON
error shape.

A plain Starlette route rather than a FastAPI one, and in the services ``WebSdkFastPath`` in front of the
framework's middleware and routing: this path serves one small request per event, and the framework's layers
cost about as much as the request's own work (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from fastapi import APIRouter
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tapwire_core import metrics
from tapwire_core.envelope import Envelope
from tapwire_core.http.auth import client_address
from tapwire_core.http.context import ServiceContext
from tapwire_core.http.errors import ApiError, error_response
from tapwire_core.http.proxies import TrustedProxyMiddleware
from tapwire_ingest.clevertap_sdk import answers
from tapwire_ingest.clevertap_sdk.accounts import (
    RATE_SETTING,
    OriginRefused,
    check_page_origin,
    sdk_account,
    web_push_key,
)
from tapwire_ingest.clevertap_sdk.logins import link_login, person_keys
from tapwire_ingest.clevertap_sdk.opt_outs import add_opt_out, opt_out_choice, set_opt_out
from tapwire_ingest.clevertap_sdk.sessions import new_device_id, session_for
from tapwire_ingest.clevertap_sdk.state import sdk_state
from tapwire_ingest.clevertap_sdk.web_records import WebRecords, web_records
from tapwire_ingest.clevertap_sdk.web_request import WebRequest, parse_web_request
from tapwire_ingest.http.upload import publish
from tapwire_ingest.identity_links import identity_graph
from tapwire_ingest.segment.cors import preflight

log = logging.getLogger(__name__)
router = APIRouter()

_ACCEPTED = metrics.RECORDS.labels("clevertap-sdk", "accepted", "")
_REFUSED = metrics.RECORDS.labels("clevertap-sdk", "rejected", "record")
_DROPPED = metrics.RECORDS.labels("clevertap-sdk", "dropped", "opted-out")
_OPTED_OUT = metrics.RECORDS.labels("clevertap-sdk", "privacy", "opted-out")
_OPTED_IN = metrics.RECORDS.labels("clevertap-sdk", "privacy", "opted-in")


async def web_sdk(request: Request) -> Response:
    if request.method == "OPTIONS":
        return preflight(request)
    origin = request.headers.get("origin")
    try:
        response = await _answer(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.error, code=exc.code, retry_after=exc.retry_after)
        if isinstance(exc, OriginRefused):
            return response
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers["Vary"] = "Origin"
    return response


router.add_route("/a", web_sdk, methods=["GET", "OPTIONS"], include_in_schema=False)


class WebSdkFastPath:
    """ASGI middleware answering ``GET /a`` itself, before the app's other middleware and its router.

    Does what the route does, with the request counted in ``tapwire_http_requests_total`` like every other
    route; an unexpected exception is logged and answered with the JSON 500 shape, as the app's handler would.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/a" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope, receive)
        try:
            response = await web_sdk(request)
        except Exception:
            log.exception("unhandled error", extra={"path": "/a"})
            response = error_response(500, "internal error")
        await response(scope, receive, send)
        status = str(response.status_code)
        counter = _STATUS_COUNTERS.get(status)
        if counter is None:
            counter = _STATUS_COUNTERS[status] = metrics.HTTP_REQUESTS.labels("/a", status)
        counter.inc()
        _LATENCY.observe(time.perf_counter() - started)


def install_fast_path(app: Starlette) -> None:
    """Put ``WebSdkFastPath`` in front of the app's middleware, but behind the trusted-proxy middleware, which
    must run first so that the per-address limits see the client's address rather than the ingress's."""
    classes: list[object] = [entry.cls for entry in app.user_middleware]
    position = classes.index(TrustedProxyMiddleware) + 1 if TrustedProxyMiddleware in classes else 0
    app.user_middleware.insert(position, Middleware(WebSdkFastPath))


_STATUS_COUNTERS: dict[str, Any] = {}
_LATENCY = metrics.HTTP_LATENCY.labels("/a")


async def _answer(request: Request) -> Response:
    app: Starlette = request.app
    context: ServiceContext = app.state.context
    settings = context.settings
    state = sdk_state(app)
    address = client_address(request)
    wait = state.per_address.take(address)
    if wait:
        raise ApiError(429, "Too many requests from this address", retry_after=wait)
    web = parse_web_request(
        request.scope["query_string"],
        max_query_bytes=settings.sdk_max_query_bytes,
        max_payload_chars=settings.sdk_max_payload_chars,
    )
    if web.payload.get("encrypted") is True:
        # 419 is what the SDK reads as "encryption in transit is off for this account": it then resends the
        # same request unencrypted, as a script.
        raise ApiError(419, "Encryption in transit is not enabled; send the request unencrypted")
    account = await sdk_account(state.accounts, web.payload.get("id"), region=settings.region)
    check_page_origin(
        account.settings, origin=request.headers.get("origin"), referer=request.headers.get("referer")
    )
    rate = _account_rate(account.settings)
    wait = state.per_account.take(account.id, rate=rate, burst=2 * rate if rate else None)
    if wait:
        raise ApiError(429, f"Too many requests for account {account.id}", retry_after=wait)
    answer = await _ingest(request, context, web, account_id=account.id, address=address)
    if web.type == "page" and answer.opt_out is not True:
        key = web_push_key(account.settings)
        if key is not None:
            answer = dataclasses.replace(answer, web_push_key=key)
    if "application/json" in request.headers.get("accept", ""):
        return answers.meta(answer)
    return answers.script(answer)


async def _ingest(
    request: Request, context: ServiceContext, web: WebRequest, *, account_id: str, address: str
) -> answers.SdkAnswer:
    state = sdk_state(request.app)
    received_ms = time.time_ns() // 1_000_000
    session_id = session_for(web.session_id, received_ms // 1000)
    device_id = web.device_id if web.device_id and not web.reset_device else new_device_id()
    user_agent = request.headers.get("user-agent", "")
    retry_after_s = context.settings.retry_after_s

    def answer(
        *, resume: bool = False, opt_out: bool | None = None, refused: list[str] | None = None
    ) -> answers.SdkAnswer:
        return answers.SdkAnswer(
            device_id=device_id,
            session_id=session_id,
            request_number=web.request_number,
            resume=resume,
            opt_out=opt_out,
            refused=refused or [],
        )

    await state.opt_outs.fresh()
    device_key = "o:" + device_id
    choice = opt_out_choice(web)
    if choice is not None:
        await set_opt_out(
            context.store.engine,
            identity_graph(request),
            state.opt_outs,
            account_id=account_id,
            device_key=device_key,
            opted_out=choice,
            retry_after_s=retry_after_s,
        )
        (_OPTED_OUT if choice else _OPTED_IN).inc()
        return answer(opt_out=choice)
    if web.device_opted_out or state.opt_outs.opted_out(account_id, (device_key,)):
        _DROPPED.inc()
        return answer(opt_out=True)

    def records_for(device: str) -> WebRecords:
        return web_records(
            web,
            account_id=account_id,
            device_id=device,
            session_id=session_id,
            received_ms=received_ms,
            user_agent=user_agent,
            client_address=address,
        )

    records = records_for(device_id)
    envelopes: list[Envelope] = records.accepted
    resume = False
    confirm = None
    if records.login is not None:
        person = person_keys(records.login)
        if state.opt_outs.opted_out(account_id, person):
            # A person who opted out logs in on another device: that device is theirs, and opted out too.
            await add_opt_out(
                context.store.engine,
                state.opt_outs,
                account_id=account_id,
                keys=[device_key],
                retry_after_s=retry_after_s,
            )
            _DROPPED.inc()
            return answer(opt_out=True)
        graph = identity_graph(request)
        login = await link_login(
            graph,
            account_id,
            device_id=device_id,
            login=records.login,
            received_ms=received_ms,
            retry_after_s=retry_after_s,
        )
        if login.new_device:
            device_id = login.device_id
            records = records_for(device_id)
        envelopes = [*records.accepted, *login.envelopes]
        resume = login.new_device or web.payload.get("isOUL") is True

        def confirm() -> None:
            login.confirm(graph, account_id)

    if envelopes:
        await publish(context, envelopes)
        if confirm is not None:
            confirm()
    if records.accepted:
        _ACCEPTED.inc(len(records.accepted))
    if records.refused:
        _REFUSED.inc(len(records.refused))
    return answer(resume=resume, refused=records.refused)


def _account_rate(settings: Any) -> float | None:
    rate = settings.get(RATE_SETTING)
    return float(rate) if type(rate) in (int, float) and rate > 0 else None

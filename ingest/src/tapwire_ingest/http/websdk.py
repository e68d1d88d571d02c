"""``GET /a``: CleverTap's Web SDK (``clevertap-web-sdk``), unchanged, sending to ``<region>.<your domain>``.

The SDK loads ``/a?t=96&type=…&d=…`` as a script (JSONP) or, with ``enableFetchApi``, fetches it expecting
JSON; both get the device id and session it waits for (``clevertap_sdk.answers``). Until the first answer gives
a browser its device id the SDK holds every later request back, so that answer must come even when the
request's record is refused: a refused record is reported in the answer, and only a failure of the request
itself (unknown account, rate limit, unreadable payload, bus down) answers with an error status and the JSON
error shape. Once a request's records are stored, its answer also carries the in-app and inbox messages waiting
for the browser's user (``clevertap_sdk.sdk_messages``; a filter keeps the others away from the database).

This path serves one small request per event, where the framework's layers cost about as much as the request's
own work (docs/benchmarks.md). So the services answer ``GET /a`` in a fast lane (``WebSdkLane``, see
``ServiceApp``) that writes its response itself; the route below serves the same answers (it calls the same
``web_sdk_reply``) to apps without the lane, and the CORS preflight.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Final

from fastapi import APIRouter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tapwire_core import metrics
from tapwire_core.http.app import ServiceApp
from tapwire_core.http.context import ServiceContext
from tapwire_core.http.errors import ApiError, error_body
from tapwire_ingest.clevertap_sdk import answers
from tapwire_ingest.clevertap_sdk.accounts import (
    RATE_SETTING,
    OriginRefused,
    check_page_origin,
    sdk_account,
    web_push_key,
)
from tapwire_ingest.clevertap_sdk.logins import link_login, login_keys, person_keys
from tapwire_ingest.clevertap_sdk.message_shapes import web_campaigns, web_inbox_setting
from tapwire_ingest.clevertap_sdk.opt_outs import add_opt_out, opt_out_choice, set_opt_out
from tapwire_ingest.clevertap_sdk.sdk_messages import attributed, request_digest, waiting_for
from tapwire_ingest.clevertap_sdk.sessions import new_device_id, session_for
from tapwire_ingest.clevertap_sdk.state import SdkState, sdk_state
from tapwire_ingest.clevertap_sdk.web_records import WebRecords, web_records
from tapwire_ingest.clevertap_sdk.web_request import WebRequest, parse_web_request
from tapwire_ingest.http.upload import publish
from tapwire_ingest.identity_links import app_identity_graph
from tapwire_ingest.segment.cors import preflight

log = logging.getLogger(__name__)
router = APIRouter()

Headers = list[tuple[bytes, bytes]]
Reply = tuple[int, Headers, bytes]
"""Status, headers (``content-length`` included) and body of an answer."""

_ACCEPTED = metrics.RECORDS.labels("clevertap-sdk", "accepted", "")
_REFUSED = metrics.RECORDS.labels("clevertap-sdk", "rejected", "record")
_DROPPED = metrics.RECORDS.labels("clevertap-sdk", "dropped", "opted-out")
_OPTED_OUT = metrics.RECORDS.labels("clevertap-sdk", "privacy", "opted-out")
_OPTED_IN = metrics.RECORDS.labels("clevertap-sdk", "privacy", "opted-in")
_ERROR_HEADERS: Final = ((b"content-type", b"application/json"),)
_CORS_HEADERS: Final = ((b"access-control-expose-headers", b"Retry-After"), (b"vary", b"Origin"))


@dataclasses.dataclass(slots=True)
class PageHeaders:
    """The request headers the answer depends on (first occurrence of each, as Starlette reads them)."""

    origin: bytes | None
    referer: bytes | None
    user_agent: str
    accept: bytes

    @classmethod
    def of(cls, scope: Scope) -> PageHeaders:
        origin = referer = user_agent = accept = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value if origin is None else origin
            elif name == b"referer":
                referer = value if referer is None else referer
            elif name == b"user-agent":
                user_agent = value if user_agent is None else user_agent
            elif name == b"accept":
                accept = value if accept is None else accept
        return cls(origin, referer, (user_agent or b"").decode("latin-1"), accept or b"")


async def web_sdk_reply(app: Starlette, scope: Scope) -> Reply:
    """The whole answer to a ``GET /a`` request. Raises only on a bug (which the caller answers with a 500)."""
    page = PageHeaders.of(scope)
    cors_origin = page.origin
    try:
        answer = await _answer(app, scope, page)
        if b"application/json" in page.accept:
            status, headers, body = (
                200,
                [*answers.META_HEADERS, *answers.ANSWER_HEADERS],
                answers.meta(answer),
            )
        else:
            status, headers, body = (
                200,
                [*answers.SCRIPT_HEADERS, *answers.ANSWER_HEADERS],
                answers.script(answer),
            )
    except ApiError as exc:
        status, headers, body = (
            exc.status,
            [*_ERROR_HEADERS],
            error_body(exc.status, exc.error, code=exc.code),
        )
        if exc.retry_after is not None:
            headers.append((b"retry-after", str(exc.retry_after).encode()))
        if isinstance(exc, OriginRefused):
            # No CORS headers: a page outside the allowed origins cannot even read why.
            cors_origin = None
    if cors_origin is not None:
        headers.append((b"access-control-allow-origin", cors_origin))
        headers.extend(_CORS_HEADERS)
    headers.append((b"content-length", str(len(body)).encode()))
    return status, headers, body


async def web_sdk(request: Request) -> Response:
    if request.method == "OPTIONS":
        return preflight(request)
    status, headers, body = await web_sdk_reply(request.app, request.scope)
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


router.add_route("/a", web_sdk, methods=["GET", "OPTIONS"], include_in_schema=False)


class WebSdkLane:
    """``GET /a`` in a service's fast lane: ``web_sdk_reply`` written straight to the server, counted in
    ``tapwire_http_requests_total`` like every other route; an unexpected exception is logged and answered with
    the JSON 500 shape, as the app's handler would."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            status, headers, body = await web_sdk_reply(self.app, scope)
        except Exception:
            log.exception("unhandled error", extra={"path": "/a"})
            body = error_body(500, "internal error")
            status, headers = 500, [*_ERROR_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        counter = _STATUS_COUNTERS.get(status)
        if counter is None:
            counter = _STATUS_COUNTERS[status] = metrics.HTTP_REQUESTS.labels("/a", str(status))
        counter.inc()
        _LATENCY.observe(time.perf_counter() - started)


def install_fast_path(app: ServiceApp) -> None:
    """Serve ``GET /a`` in the app's fast lane (the trusted proxies still apply first)."""
    app.add_fast_lane("GET", "/a", WebSdkLane(app))


_STATUS_COUNTERS: dict[int, Any] = {}
_LATENCY = metrics.HTTP_LATENCY.labels("/a")


async def _answer(app: Starlette, scope: Scope, page: PageHeaders) -> answers.SdkAnswer:
    context: ServiceContext = app.state.context
    settings = context.settings
    state = sdk_state(app)
    client = scope.get("client")
    address = client[0] if client else "unknown"
    wait = state.per_address.take(address)
    if wait:
        raise ApiError(429, "Too many requests from this address", retry_after=wait)
    web = parse_web_request(
        scope["query_string"],
        max_query_bytes=settings.sdk_max_query_bytes,
        max_payload_chars=settings.sdk_max_payload_chars,
    )
    if web.payload.get("encrypted") is True:
        # 419 is what the SDK reads as "encryption in transit is off for this account": it then resends the
        # same request unencrypted, as a script.
        raise ApiError(419, "Encryption in transit is not enabled; send the request unencrypted")
    account = await sdk_account(state.accounts, web.payload.get("id"), region=settings.region)
    check_page_origin(
        account.settings,
        origin=None if page.origin is None else page.origin.decode("latin-1"),
        referer=None if page.referer is None else page.referer.decode("latin-1"),
    )
    rate = _account_rate(account.settings)
    wait = state.per_account.take(account.id, rate=rate, burst=2 * rate if rate else None)
    if wait:
        raise ApiError(429, f"Too many requests for account {account.id}", retry_after=wait)
    answer = await _ingest(
        app, context, state, web, account_id=account.id, address=address, user_agent=page.user_agent
    )
    if answer.opt_out is not True:
        await _add_messages(
            context, state, web, answer, account_settings=account.settings, account_id=account.id
        )
    if web.type == "page" and answer.opt_out is not True:
        key = web_push_key(account.settings)
        if key is not None:
            answer = dataclasses.replace(answer, web_push_key=key)
    return answer


async def _ingest(
    app: Starlette,
    context: ServiceContext,
    state: SdkState,
    web: WebRequest,
    *,
    account_id: str,
    address: str,
    user_agent: str,
) -> answers.SdkAnswer:
    received_ms = time.time_ns() // 1_000_000
    session_id = session_for(web.session_id, received_ms // 1000)
    device_id = web.device_id if web.device_id and not web.reset_device else new_device_id()
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
    opt_out = await _settled_opt_out(app, context, state, web, account_id=account_id, device_key=device_key)
    if opt_out is not None:
        return answer(opt_out=opt_out)

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
    envelopes = records.accepted
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
        graph = app_identity_graph(app)
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
        envelopes = await attributed(context, account_id, envelopes)
        await publish(context, envelopes)
        if confirm is not None:
            confirm()
    _count(records)
    return answer(resume=resume, refused=records.refused)


async def _settled_opt_out(
    app: Starlette,
    context: ServiceContext,
    state: SdkState,
    web: WebRequest,
    *,
    account_id: str,
    device_key: str,
) -> bool | None:
    """The device's opt-out when it settles this request: the choice the request makes (recorded now), or True
    when the device opted out before (its records are dropped). None when the request's records are taken."""
    choice = opt_out_choice(web)
    if choice is not None:
        await set_opt_out(
            context.store.engine,
            app_identity_graph(app),
            state.opt_outs,
            account_id=account_id,
            device_key=device_key,
            opted_out=choice,
            retry_after_s=context.settings.retry_after_s,
        )
        (_OPTED_OUT if choice else _OPTED_IN).inc()
        return choice
    if web.device_opted_out or state.opt_outs.opted_out(account_id, (device_key,)):
        _DROPPED.inc()
        return True
    return None


async def _add_messages(
    context: ServiceContext,
    state: SdkState,
    web: WebRequest,
    answer: answers.SdkAnswer,
    *,
    account_settings: Any,
    account_id: str,
) -> None:
    """Put the in-app and inbox messages waiting for the browser's user into the answer (``sdk_messages``)."""
    device_id = answer.device_id
    messages = await waiting_for(
        context,
        state,
        account_id=account_id,
        keys=["o:" + device_id, *login_keys(web)],
        request=lambda: request_digest(
            "web", device_id, web.request_number, web.saved_at_s, web.sequence, web.raw_payload
        ),
    )
    page_load = web.type == "page"
    if not messages and not page_load:
        return
    answer.campaigns = web_campaigns(messages, web_inbox_setting(account_settings), page_load=page_load)


def _count(records: WebRecords) -> None:
    if records.accepted:
        _ACCEPTED.inc(len(records.accepted))
    if records.refused:
        _REFUSED.inc(len(records.refused))


def _account_rate(settings: Any) -> float | None:
    rate = settings.get(RATE_SETTING)
    return float(rate) if type(rate) in (int, float) and rate > 0 else None

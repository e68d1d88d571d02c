"""The mobile SDKs' protocol (CleverTap Android and iOS SDKs, unchanged): ``GET|POST /hello`` and ``POST /a1``.

Both carry ``X-CleverTap-Account-ID`` and ``X-CleverTap-Token`` (the account token: a tapwire write key of the
account), checked before the body is read. ``/hello`` is the handshake the SDKs perform before sending
(``CtApi.performHandshakeForDomain``, iOS ``CTRequestFactory.helloRequestWithConfig``): the answer's
``X-WZRK-RD`` / ``X-WZRK-SPIKY-RD`` name the host to send to, here the one the SDK already used. ``/a1`` takes
the queued items (``clevertap_sdk.mobile_records``); a 200 means the stored ones are durable, and the SDK deletes
its copy; any other status makes it keep the queue and send it again later, which the stable event ids make
harmless. The answer carries the in-app and inbox messages waiting for the device's user (``inapp_notifs``,
``inbox_notifs``; ``clevertap_sdk.sdk_messages``), which the SDKs show.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from tapwire_core import metrics
from tapwire_core.envelope import Envelope
from tapwire_core.http.auth import client_address, credential_errors
from tapwire_core.http.body import BodyLimits, mark_authenticated, read_json
from tapwire_core.http.context import AccountView, ServiceContext
from tapwire_core.http.errors import ApiError, error_response, json_response
from tapwire_ingest.clevertap.limits import MAX_UPLOAD_DEPTH, MAX_UPLOAD_VALUES
from tapwire_ingest.clevertap_sdk.accounts import ENABLED_SETTING
from tapwire_ingest.clevertap_sdk.logins import LoginOutcome, link_login, person_keys
from tapwire_ingest.clevertap_sdk.message_shapes import mobile_campaigns
from tapwire_ingest.clevertap_sdk.mobile_records import MobileBatch, mobile_batch
from tapwire_ingest.clevertap_sdk.opt_outs import add_opt_out, set_opt_out
from tapwire_ingest.clevertap_sdk.sdk_messages import attributed, request_digest, waiting_for
from tapwire_ingest.clevertap_sdk.state import SdkState, sdk_state
from tapwire_ingest.clevertap_sdk.web_request import DEVICE_ID
from tapwire_ingest.http.upload import publish
from tapwire_ingest.identity_links import identity_graph

router = APIRouter()

_HOST: Final = re.compile(r"[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?")
_PLATFORMS: Final = {"android": "Android", "ios": "iOS"}
_ACCEPTED = metrics.RECORDS.labels("clevertap-sdk", "accepted", "")
_REFUSED = metrics.RECORDS.labels("clevertap-sdk", "rejected", "record")
_DROPPED = metrics.RECORDS.labels("clevertap-sdk", "dropped", "opted-out")


async def hello(request: Request) -> Response:
    try:
        await _authenticated(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error, code=exc.code, retry_after=exc.retry_after)
    response = json_response({"status": "success"})
    host = request.headers.get("host", "")
    if _HOST.fullmatch(host):
        response.headers["X-WZRK-RD"] = host
        response.headers["X-WZRK-SPIKY-RD"] = host
    response.headers["X-WZRK-MUTE"] = "false"
    return response


async def queue(request: Request) -> Response:
    try:
        return await _queue(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error, code=exc.code, retry_after=exc.retry_after)


router.add_route("/hello", hello, methods=["GET", "POST"], include_in_schema=False)
router.add_route("/a1", queue, methods=["POST"], include_in_schema=False)


async def _authenticated(request: Request) -> AccountView:
    """The account named by the headers, its token checked: 401/403 as for the upload API, 429 past the
    per-address or per-account rate."""
    context: ServiceContext = request.app.state.context
    state = sdk_state(request.app)
    wait = state.per_address.take(client_address(request))
    if wait:
        raise ApiError(429, "Too many requests from this address", retry_after=wait)
    account_id = request.headers.get("x-clevertap-account-id", "").strip()
    token = request.headers.get("x-clevertap-token", "")
    if not account_id or not token:
        raise ApiError(401, "X-CleverTap-Account-ID and X-CleverTap-Token are required")
    with credential_errors(context):
        account = await context.authenticator.authenticate_write_key(token, client=client_address(request))
    if account is None or account.id != account_id:
        raise ApiError(401, "Account ID or token is not valid")
    region = context.settings.region
    if account.region != region:
        raise ApiError(
            403,
            f"Account {account.id} belongs to region {account.region}; "
            f"set the SDK's region to {account.region}",
        )
    if account.settings.get(ENABLED_SETTING, True) is False:
        raise ApiError(403, f"Client SDK ingestion is turned off for account {account.id}")
    wait = state.per_account.take(account.id)
    if wait:
        raise ApiError(429, f"Too many requests for account {account.id}", retry_after=wait)
    mark_authenticated(request, account.id)
    return account


async def _queue(request: Request) -> Response:
    account = await _authenticated(request)
    context: ServiceContext = request.app.state.context
    settings = context.settings
    state = sdk_state(request.app)
    payload = await read_json(
        request,
        BodyLimits(
            max_bytes=settings.sdk_max_body_bytes,
            max_inflated=settings.sdk_max_body_bytes,
            max_values=MAX_UPLOAD_VALUES,
            max_depth=MAX_UPLOAD_DEPTH,
        ),
    )
    received_ms = time.time_ns() // 1_000_000
    platform = _PLATFORMS.get(
        request.query_params.get("os", "").lower(), request.query_params.get("os", "")[:16]
    )
    if type(payload) is dict and "itp" in payload:
        # The Android SDK's encryption in transit (EncryptedSendQueueRequestBody): 419 is what it reads as
        # "not enabled for this account", after which it sends the queue unencrypted (NetworkManager).
        raise ApiError(419, "Encryption in transit is not enabled; send the queue unencrypted")
    try:
        batch = mobile_batch(
            payload,
            account_id=account.id,
            platform=platform,
            received_ms=received_ms,
            device_pattern=DEVICE_ID,
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
    resolved = await _resolve(request, context, state, batch, account_id=account.id, received_ms=received_ms)
    envelopes = await attributed(context, account.id, resolved.envelopes)
    if envelopes or resolved.links:
        await publish(context, [*envelopes, *resolved.links])
        resolved.confirm()
    _ACCEPTED.inc(len(resolved.envelopes))
    if batch.refused:
        _REFUSED.inc(len(batch.refused))
    if resolved.dropped:
        _DROPPED.inc(resolved.dropped)
    status = "success" if not batch.refused else ("partial" if resolved.envelopes else "fail")
    answer: dict[str, Any] = {"status": status, "processed": len(envelopes), "unprocessed": batch.refused}
    if not state.opt_outs.opted_out(account.id, ("o:" + batch.device_id,)):
        messages = await waiting_for(
            context,
            state,
            account_id=account.id,
            keys=["o:" + batch.device_id],
            request=lambda: request_digest("a1", batch.device_id, *(e.event_id for e in envelopes)),
        )
        answer |= mobile_campaigns(messages)
    return json_response(answer)


async def _resolve(
    request: Request,
    context: ServiceContext,
    state: SdkState,
    batch: MobileBatch,
    *,
    account_id: str,
    received_ms: int,
) -> _Resolved:
    """Apply opt-outs and logins in the order the items came."""
    retry_after_s = context.settings.retry_after_s
    await state.opt_outs.fresh()
    device_key = "o:" + batch.device_id
    opted_out = state.opt_outs.opted_out(account_id, (device_key,))
    graph = identity_graph(request)
    envelopes: list[Envelope] = []
    links: list[Envelope] = []
    confirms: list[LoginOutcome] = []
    dropped = 0
    for item in batch.items:
        if item.opt_out is not None:
            await set_opt_out(
                context.store.engine,
                graph,
                state.opt_outs,
                account_id=account_id,
                device_key=device_key,
                opted_out=item.opt_out,
                retry_after_s=retry_after_s,
            )
            opted_out = item.opt_out
        if item.envelope is None:
            continue
        if opted_out:
            dropped += 1
            continue
        if item.login is not None:
            if state.opt_outs.opted_out(account_id, person_keys(item.login)):
                await add_opt_out(
                    context.store.engine,
                    state.opt_outs,
                    account_id=account_id,
                    keys=[device_key],
                    retry_after_s=retry_after_s,
                )
                opted_out = True
                dropped += 1
                continue
            login = await link_login(
                graph,
                account_id,
                device_id=batch.device_id,
                login=item.login,
                received_ms=received_ms,
                retry_after_s=retry_after_s,
                new_device_on_refusal=False,
            )
            links.extend(login.envelopes)
            confirms.append(login)
        envelopes.append(item.envelope)

    def confirm() -> None:
        for login in confirms:
            login.confirm(graph, account_id)

    return _Resolved(envelopes, links, dropped, confirm)


@dataclass(frozen=True, slots=True)
class _Resolved:
    envelopes: list[Envelope]
    """The records to store."""
    links: list[Envelope]
    """``user_aliases`` rows of the logins."""
    dropped: int
    """Records an opt-out kept from being stored."""
    confirm: Callable[[], None]
    """Remember the links, once their rows are durable."""

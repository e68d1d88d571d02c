"""Segment HTTP Tracking API: ``/v1/batch`` (and ``/v1/import``) plus the single-call paths.

Also the one-letter paths analytics.js (``@segment/analytics-next``) posts to (``/v1/t``, ``/v1/p``, …, and
``/v1/b`` for its batching mode) and ``/v1/projects/{writeKey}/settings``, the settings document it loads.

Every answer follows docs/segment.md: 200 exactly when the accepted messages (and the identity links they made)
are durable on the bus; invalid messages of a batch are dead-lettered and the batch still gets its 200; errors
carry ``code`` and ``message``; back-pressure is 429/503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_core import metrics
from tapwire_core.bus import BusUnavailable, Record
from tapwire_core.envelope import Envelope
from tapwire_core.http.auth import Context, client_address, credential_errors
from tapwire_core.http.body import BodyLimits, JsonBody, body_ticket, check_json_shape, decode_json, read_body
from tapwire_core.http.context import AccountView, ServiceContext
from tapwire_core.http.errors import ApiError, json_response
from tapwire_core.settings import Settings
from tapwire_ingest.http.upload import publish
from tapwire_ingest.identity_links import link_request
from tapwire_ingest.segment.auth import body_write_key, header_write_key, write_key_account
from tapwire_ingest.segment.cors import CorsRoute, check_origin, preflight
from tapwire_ingest.segment.messages import BatchOutcome, Rejection, batch_context, map_messages

log = logging.getLogger(__name__)
router = APIRouter(route_class=CorsRoute)

BATCH_PATHS = ("/v1/batch", "/v1/import", "/v1/b")
SINGLE_PATHS = {
    "/v1/track": "track",
    "/v1/identify": "identify",
    "/v1/page": "page",
    "/v1/screen": "screen",
    "/v1/group": "group",
    "/v1/alias": "alias",
    # analytics.js posts each call to the path named by its type's first letter.
    "/v1/t": "track",
    "/v1/i": "identify",
    "/v1/p": "page",
    "/v1/s": "screen",
    "/v1/g": "group",
    "/v1/a": "alias",
}

_ACCEPTED = metrics.RECORDS.labels("segment", "accepted", "")


async def ingest(request: Request, context: ServiceContext, *, implied_type: str | None) -> Response:
    settings = context.settings
    received_ms = time.time_ns() // 1_000_000
    write_key, account, body = await _authenticated_body(request, context)
    payload = body.value
    if type(payload) is not dict:
        raise ApiError(400, "Body must be a JSON object")
    check_origin(request, account.settings)
    if implied_type is None:
        messages = payload.get("batch")
        if type(messages) is not list:
            raise ApiError(400, 'Body must be an object with a list of messages under "batch"')
    else:
        messages = [payload]
    _count_retry(request)
    limit = int(account.settings.get("upload_concurrency", settings.upload_concurrency))
    async with context.limiter.slot(account.id, limit):
        batch = batch_context(
            payload,
            account_id=account.id,
            key_scope=context.authenticator.write_key_scope(write_key),
            received_ms=received_ms,
            request_digest=hashlib.blake2b(body.text, digest_size=16).digest(),
            max_event_bytes=settings.segment_max_event_bytes,
            client_ip=request.client.host if request.client else None,
        )
        outcome = map_messages(
            messages, batch, implied_type=implied_type, max_events=settings.segment_max_batch_events
        )
        links = await link_request(
            request, account.id, outcome.links, received_ms=received_ms, retry_after_s=settings.retry_after_s
        )
        await _publish_all(context, account.id, outcome, links.envelopes)
        links.confirm()
    _count(outcome)
    if implied_type is not None and outcome.rejected:
        # A single call that is invalid is refused outright: nothing else rides on this request.
        rejected = outcome.rejected[0]
        raise ApiError(413 if rejected.code == "event_too_large" else 400, rejected.reason)
    return json_response({"success": True})


def segment_limits(settings: Settings) -> BodyLimits:
    """``/v1/*`` bodies: the batch cap applies before and after inflating; properties may nest (deeper than
    three levels they are kept as JSON text, see docs/segment.md), but not without end."""
    cap = settings.segment_max_batch_bytes
    return BodyLimits(max_bytes=cap, max_inflated=cap, max_values=100_000, max_depth=64)


async def _authenticated_body(request: Request, context: ServiceContext) -> tuple[str, AccountView, JsonBody]:
    """The write key, its account and the decoded body, authenticating before anything is decoded.

    With the key in the header, a wrong key costs no body read. With the key in the body (browsers), the body is
    read within the batch cap and measured, its ``writeKey`` alone decoded, and the rest only once it is valid.
    Content-Type is not checked: browsers send text/plain (sendBeacon, analytics.js) to avoid a preflight.
    """
    limits = segment_limits(context.settings)
    write_key = header_write_key(request)
    if write_key is not None:
        account = await write_key_account(request, context, write_key)
        text = await read_body(request, limits)
    else:
        text = await read_body(request, limits, public=True)
        check_json_shape(text, limits, ticket=body_ticket(request))
        write_key = body_write_key(request, text)
        account = await write_key_account(request, context, write_key)
    return write_key, account, JsonBody(text, decode_json(text, limits, ticket=body_ticket(request)))


async def _publish_all(
    context: ServiceContext, account_id: str, outcome: BatchOutcome, aliases: list[Envelope]
) -> None:
    envelopes = [*outcome.envelopes, *aliases]
    tasks = []
    if envelopes:
        tasks.append(publish(context, envelopes))
    if outcome.rejected:
        tasks.append(_dead_letter(context, account_id, outcome.rejected))
    if tasks:
        await asyncio.gather(*tasks)


async def _dead_letter(context: ServiceContext, account_id: str, rejected: list[Rejection]) -> None:
    """Invalid messages go to the dead-letter topic with why, so an operator can inspect or replay them."""
    records = []
    for item in rejected:
        value = {
            "account_id": account_id,
            "source": "segment",
            "code": item.code,
            "reason": item.reason,
            "position": item.position,
            "message": item.message,
        }
        try:
            encoded = orjson.dumps(value)
        except TypeError:  # nested past the encoder's depth limit
            encoded = orjson.dumps(value | {"message": "message not kept: nested too deeply"})
        records.append(
            Record(
                key=f"{account_id}\x1fsegment".encode(),
                value=encoded,
                headers=(
                    ("tapwire-origin", b"segment"),
                    ("tapwire-account", account_id.encode()),
                    ("tapwire-reason", item.reason.encode()[:1024]),
                    ("tapwire-reason-category", f"segment:{item.code}".encode()),
                ),
            )
        )
        metrics.DEAD_LETTERS.labels(f"segment:{item.code}").inc()
    settings = context.settings
    try:
        await context.bus.publish(settings.dead_letter_topic, records, timeout_s=settings.bus_timeout_s)
    except BusUnavailable as exc:
        metrics.BUS_FAILURES.inc()
        raise ApiError(
            503, "Ingestion is temporarily unavailable; retry later", retry_after=settings.retry_after_s
        ) from exc


def _count(outcome: BatchOutcome) -> None:
    if outcome.envelopes:
        _ACCEPTED.inc(len(outcome.envelopes))
    for item in outcome.rejected:
        metrics.RECORDS.labels("segment", "rejected", item.code).inc()


def _count_retry(request: Request) -> None:
    if request.headers.get("x-retry-count"):
        metrics.SEGMENT_RETRIES.inc()


def _batch_endpoint() -> Any:
    async def endpoint(request: Request, context: Context) -> Response:
        return await ingest(request, context, implied_type=None)

    return endpoint


def _single_endpoint(message_type: str) -> Any:
    async def endpoint(request: Request, context: Context) -> Response:
        return await ingest(request, context, implied_type=message_type)

    return endpoint


async def _preflight(request: Request) -> Response:
    return preflight(request)


for _path in BATCH_PATHS:
    router.add_api_route(_path, _batch_endpoint(), methods=["POST"], include_in_schema=_path != "/v1/b")
    router.add_api_route(_path, _preflight, methods=["OPTIONS"], include_in_schema=False)
for _path, _type in SINGLE_PATHS.items():
    router.add_api_route(_path, _single_endpoint(_type), methods=["POST"], include_in_schema=len(_path) > 5)
    router.add_api_route(_path, _preflight, methods=["OPTIONS"], include_in_schema=False)


@router.get("/v1/projects/{write_key}/settings")
async def project_settings(write_key: str, request: Request, context: Context) -> Response:
    """The settings document analytics.js loads at start, pointing its events back at this server.

    Lets a page load analytics.js with ``cdnURL`` set to tapwire; nothing is fetched from Segment.
    """
    with credential_errors(context):
        account = await context.authenticator.authenticate_write_key(
            write_key, client=client_address(request)
        )
    if account is None:
        raise ApiError(404, "Unknown write key")
    check_origin(request, account.settings)
    base = context.settings.public_url or str(request.base_url)
    scheme, _, host = base.rstrip("/").partition("://")
    return json_response(
        {
            "integrations": {
                "Segment.io": {
                    "apiKey": write_key,
                    "apiHost": f"{host}/v1",
                    "protocol": scheme,
                    "unbundledIntegrations": [],
                    "addBundledMetadata": True,
                    "maybeBundledConfigIds": {},
                }
            },
            "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
            "enabledMiddleware": {},
            "middlewareSettings": {},
            "metrics": {"sampleRate": 0},
            "legacyVideoPluginsEnabled": False,
            "remotePlugins": [],
        }
    )


@router.options("/v1/projects/{write_key}/settings", include_in_schema=False)
async def project_settings_preflight(request: Request) -> Response:
    return preflight(request)

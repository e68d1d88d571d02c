"""``POST /1/upload``: CleverTap event, profile and token records."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_core import metrics
from tapwire_core.bus import BusUnavailable
from tapwire_core.control.privacy.suppression import without_suppressed
from tapwire_core.envelope import Envelope
from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_json_body
from tapwire_core.http.context import ServiceContext
from tapwire_core.http.errors import ApiError, json_response
from tapwire_core.settings import Settings
from tapwire_ingest.clevertap.limits import MAX_RECORDS_PER_UPLOAD, MAX_UPLOAD_DEPTH, MAX_UPLOAD_VALUES
from tapwire_ingest.clevertap.upload_records import UploadOutcome, validate_upload
from tapwire_ingest.identity_links import link_request, links_from_envelopes

log = logging.getLogger(__name__)
router = APIRouter()

_ACCEPTED = metrics.RECORDS.labels("clevertap", "accepted", "")


@router.post("/1/upload")
async def upload(request: Request, account: PasscodeAccount, context: Context) -> Response:
    settings = context.settings
    limit = int(account.settings.get("upload_concurrency", settings.upload_concurrency))
    async with context.limiter.slot(account.id, limit):
        body = await read_json_body(request, upload_limits(settings))
        payload = body.value
        if type(payload) is not dict or type(payload.get("d")) is not list:
            raise ApiError(400, 'Body must be an object with a list of records under "d"')
        records = payload["d"]
        if len(records) > MAX_RECORDS_PER_UPLOAD:
            raise ApiError(400, f"At most {MAX_RECORDS_PER_UPLOAD} records per upload, got {len(records)}")
        outcome = validate_upload(
            records,
            account_id=account.id,
            received_ms=time.time_ns() // 1_000_000,
            request_digest=hashlib.blake2b(body.text, digest_size=16).digest(),
        )
        dry_run = request.query_params.get("dryRun", "0") not in ("0", "", "false")
        if outcome.accepted and not dry_run:
            # Records naming several identifiers (a login: identity + objectId; a profile with Email/Phone)
            # link them in the identity graph; the alias rows ride on the same durable publish.
            links = await link_request(
                request,
                account.id,
                links_from_envelopes(outcome.accepted, "clevertap"),
                received_ms=outcome.accepted[0].received_ts,
                retry_after_s=settings.retry_after_s,
            )
            await publish(context, [*outcome.accepted, *links.envelopes])
            links.confirm()
        _count(outcome)
        return json_response(
            {
                "status": outcome.status,
                "processed": len(outcome.accepted),
                "unprocessed": [_echoable(entry) for entry in outcome.unprocessed],
            }
        )


def upload_limits(settings: Settings) -> BodyLimits:
    """What a CleverTap-style body may be: the byte caps from settings, and a bound on JSON values and nesting
    that no valid upload of 1,000 records comes near."""
    return BodyLimits(
        max_bytes=settings.max_body_bytes,
        max_inflated=settings.max_inflated_bytes,
        max_values=MAX_UPLOAD_VALUES,
        max_depth=MAX_UPLOAD_DEPTH,
    )


async def publish(context: ServiceContext, envelopes: list[Envelope]) -> None:
    """Hand the records to the bus and return only once they are durable; 503 when that cannot be had.

    Records of erased subjects (the suppression list) are acknowledged like any other but never published.
    """
    if context.suppressions is not None:
        envelopes = without_suppressed(envelopes, context.suppressions, stage="gateway")
        if not envelopes:
            return
    topic = context.settings.events_topic
    started = time.perf_counter()
    try:
        await context.publisher.publish(topic, envelopes, timeout_s=context.settings.bus_timeout_s)
    except BusUnavailable as exc:
        metrics.BUS_FAILURES.inc()
        log.warning("bus unavailable, refusing upload", extra={"error": str(exc)})
        raise ApiError(
            503,
            "Ingestion is temporarily unavailable; retry later",
            retry_after=context.settings.retry_after_s,
        ) from exc
    metrics.BUS_PUBLISH.observe(time.perf_counter() - started)


def _echoable(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry itself, unless its echoed record cannot be written back as JSON (nesting past the
    encoder's depth limit); then the record is replaced by a note so the rest of the answer still goes out."""
    try:
        orjson.dumps({"unprocessed": [entry]})  # same depth as in the response
    except TypeError:
        return entry | {"record": "record not echoed: nested too deeply"}
    return entry


def _count(outcome: UploadOutcome) -> None:
    if outcome.accepted:
        _ACCEPTED.inc(len(outcome.accepted))
    for entry in outcome.unprocessed:
        metrics.RECORDS.labels("clevertap", "rejected", str(entry["code"])).inc()

"""``POST /privacy/v1/intake/{account_id}``: an end user's own request, with no credentials.

The customer is the controller, so nothing is acted on here: the request is recorded as ``referred``, the
customer is told (webhook notice, and ``GET /privacy/v1/requests?status=referred``) and only
``POST /privacy/v1/requests/{id}/confirm`` by the customer starts it. The answer never says whether the
platform holds data about the person. Abuse limits: a small body cap, and a per-account and per-client-address
sliding-window rate limit (429 with ``Retry-After``).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from tapwire_core.http.auth import Context
from tapwire_core.http.body import BodyLimits, read_model
from tapwire_core.http.errors import ApiError, json_response
from tapwire_privacy.records import iso
from tapwire_privacy.routes.dependencies import Privacy
from tapwire_privacy.subjects import SubjectIn

router = APIRouter()

_LIMITS = BodyLimits(max_bytes=16 * 1024, max_inflated=16 * 1024, max_values=200, max_depth=8)


class IntakeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["erasure", "export", "rectify", "objection"]
    subject: SubjectIn


@router.post("/privacy/v1/intake/{account_id}")
async def intake(account_id: str, request: Request, context: Context, privacy: Privacy) -> Response:
    client = request.client.host if request.client else "unknown"
    wait = privacy.intake_limit.retry_after(f"account:{account_id}", f"client:{client}")
    if wait is not None:
        raise ApiError(429, "Too many requests; try again later", retry_after=wait)
    intake_in = await read_model(request, IntakeIn, _LIMITS, public=True)
    account = await context.store.get_account(account_id)
    if account is None or account.region != context.settings.region:
        raise ApiError(404, "Unknown account")
    view = await privacy.submit(
        account=account,
        type=intake_in.type,
        scope="subject",
        channel="direct",
        keys=intake_in.subject.keys(),
        status="referred",
    )
    return json_response(
        {
            "id": view.id,
            "status": view.status,
            "received_at": iso(view.received_at),
            "due_at": iso(view.due_at),
        },
        status=202,
    )

"""Deleting the whole account: ``POST /privacy/v1/offboarding`` starts it, a signed link follows it.

Starting it revokes every credential of the account within the worker's next pass, so the answer carries a
``status_url`` signed with the deployment's link key: it shows the job's progress, then the archive's download link
(the same signature opens ``/privacy/v1/requests/{id}/export``) and the completion record, without credentials,
until it expires (``STATUS_LINK_DAYS``). The route is not in the console's role table, so only an admin's session
(or the passcode) may call it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tapwire_core.http.auth import PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_model
from tapwire_core.http.errors import ApiError, json_response
from tapwire_privacy.export_archive import signed_export_url
from tapwire_privacy.offboarding import OFFBOARDING, is_offboarding
from tapwire_privacy.records import RequestView, iso
from tapwire_privacy.routes.dependencies import Privacy
from tapwire_privacy.routes.signed_links import linked_request
from tapwire_privacy.service import PrivacyService

router = APIRouter()

STATUS_LINK_DAYS: Final = 60
"""How long the status link works: past the archive's retention and the bus copies' expiry (23 days at most)."""
_LIMITS = BodyLimits(max_bytes=1024, max_inflated=1024, max_values=4, max_depth=2)


class OffboardingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: str = Field(max_length=64, description="the account id, typed again")


def status_url(base_url: str, key: bytes, view: RequestView) -> str:
    expires = view.received_at + dt.timedelta(days=STATUS_LINK_DAYS)
    download = signed_export_url(base_url, key, view.id, expires)
    return download.replace(f"/privacy/v1/requests/{view.id}/export?", f"/privacy/v1/offboarding/{view.id}?")


async def offboarding_body(service: PrivacyService, view: RequestView) -> dict[str, Any]:
    """The job as its customer and operator see it: progress per store, the archive, the completion record."""
    key = await service.repository.secrets.link_key()
    base = service.settings.resolved_public_url()
    part = view.progress.get(OFFBOARDING, {})
    archive = dict(part.get("archive") or {})
    if archive and view.export_erased_at is None:
        expires = view.received_at + dt.timedelta(days=STATUS_LINK_DAYS)
        archive["url"] = signed_export_url(base, key, view.id, expires)
    return {
        "id": view.id,
        "account_id": view.account_id,
        "status": view.status,
        "phase": view.progress.get("phase"),
        "started_at": part.get("started_at"),
        "access_revoked": part.get("revoked"),
        "archive": archive or None,
        "archive_erased_at": iso(view.export_erased_at),
        "stores": view.progress.get("stores", {}),
        "attempts": view.attempts,
        "failure": view.progress.get("failure"),
        "bus_copies": view.progress.get("bus_copies", []),
        "copies_gone_at": view.progress.get("copies_gone_at"),
        "completed_at": iso(view.completed_at),
        "completion_record": (view.verification or {}).get(OFFBOARDING),
        "status_url": status_url(base, key, view),
    }


@router.post("/privacy/v1/offboarding")
async def start_offboarding(request: Request, account: PasscodeAccount, privacy: Privacy) -> Response:
    """Start deleting the account (or show the deletion already under way): 202 with the job and its links."""
    body = await read_model(request, OffboardingIn, _LIMITS)
    if body.confirm != account.id:
        raise ApiError(422, "confirm: type the account id to confirm the account's deletion")
    view = await privacy.start_offboarding(account=account)
    return json_response(await offboarding_body(privacy, view), status=202)


@router.get("/privacy/v1/offboarding/{request_id}")
async def offboarding_status(
    request_id: str,
    privacy: Privacy,
    expires: Annotated[str, Query(max_length=20)] = "",
    signature: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    """The job, for whoever holds its signed status link (the account's credentials are revoked by then)."""
    view = await linked_request(
        privacy, request_id, expires=expires, signature=signature, missing="Account deletion not found"
    )
    if not is_offboarding(view):
        raise ApiError(404, "Account deletion not found")
    return json_response(await offboarding_body(privacy, view))

"""The native privacy request API (passcode auth), the signed export download and the data inventory."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import FileResponse, Response

from tapwire_core.http.auth import PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_model
from tapwire_core.http.errors import ApiError, json_response
from tapwire_privacy.deadlines import ExtensionRefused
from tapwire_privacy.export_archive import signed_export_url
from tapwire_privacy.inventory import build_inventory
from tapwire_privacy.offboarding import OFFBOARDING, is_offboarding
from tapwire_privacy.records import REQUEST_STATUSES, RequestView, iso
from tapwire_privacy.repository import ACKNOWLEDGEMENT, RequestConflict, RequestNotFound
from tapwire_privacy.routes.dependencies import Privacy
from tapwire_privacy.routes.signed_links import linked_request
from tapwire_privacy.service import PrivacyService
from tapwire_privacy.stores.files import archive_path
from tapwire_privacy.subjects import RectifyFields, SubjectIn

router = APIRouter()
log = logging.getLogger(__name__)

LINK_LIFETIME = dt.timedelta(hours=24)
# Bodies are read in the handler, after the passcode is checked (a pydantic ``Body()`` parameter would be read and
# parsed by FastAPI before any dependency runs). A rectify request carries at most 256 fields of 100 values.
_LIMITS = BodyLimits(max_bytes=1024 * 1024, max_inflated=1024 * 1024, max_values=30_000, max_depth=8)


class RequestIn(BaseModel):
    """``POST /privacy/v1/requests``. ``scope: tenant`` acts on the whole account (erasure or export only)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["erasure", "export", "rectify", "objection"]
    scope: Literal["subject", "tenant"] = "subject"
    subject: SubjectIn | None = None
    fields: dict[str, str | int | float | bool | list[str]] | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _consistent(self) -> RequestIn:
        if self.scope == "tenant":
            if self.type not in ("erasure", "export"):
                raise ValueError("a tenant-level request is an erasure or an export")
            if self.subject is not None:
                raise ValueError("a tenant-level request names no subject")
        elif self.subject is None:
            raise ValueError("name the subject")
        if self.type == "rectify":
            RectifyFields(fields=self.fields or {})
        elif self.fields is not None:
            raise ValueError("fields belong to a rectify request only")
        return self


class ExtendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    months: int = Field(ge=1, le=2)
    reason: str = Field(min_length=3, max_length=2000)


async def _body(service: PrivacyService, view: RequestView, *, detail: bool = False) -> dict[str, Any]:
    now = service.clock()
    url = None
    if (
        view.type == "export"
        and view.status == "completed"
        and view.export_erased_at is None
        and view.export_expires_at is not None
        and view.export_expires_at > now
    ):
        expires = min(view.export_expires_at, now + LINK_LIFETIME)
        url = signed_export_url(
            service.settings.resolved_public_url(),
            await service.repository.secrets.link_key(),
            view.id,
            expires,
        )
    body = view.to_json(now=now, export_url=url)
    if detail:
        body["audit"] = [
            {**entry, "at": iso(entry["at"])} for entry in await service.repository.audit.trail(view.id)
        ]
        body["notices"] = await service.repository.notices.of_request(view.id)
        if view.acknowledge_by is not None:
            body["acknowledged_at"] = next(
                (n["delivered_at"] for n in body["notices"] if n["kind"] == ACKNOWLEDGEMENT), None
            )
    return body


@router.post("/privacy/v1/requests")
async def create_request(request: Request, account: PasscodeAccount, privacy: Privacy) -> Response:
    request_in = await read_model(request, RequestIn, _LIMITS)
    keys = request_in.subject.keys() if request_in.subject is not None else []
    view = await privacy.submit(
        account=account,
        type=request_in.type,
        scope=request_in.scope,
        channel="api",
        keys=keys,
        payload={"fields": request_in.fields} if request_in.fields else None,
    )
    return json_response(await _body(privacy, view), status=202)


@router.get("/privacy/v1/requests")
async def list_requests(
    account: PasscodeAccount,
    privacy: Privacy,
    status: Annotated[str | None, Query()] = None,
    overdue: Annotated[bool | None, Query()] = None,
) -> Response:
    if status is not None and status not in REQUEST_STATUSES:
        raise ApiError(422, f"status must be one of {', '.join(REQUEST_STATUSES)}")
    views = await privacy.repository.requests.of_account(
        account_id=account.id, status=status, overdue=overdue
    )
    return json_response({"status": "success", "requests": [await _body(privacy, v) for v in views]})


@router.get("/privacy/v1/requests/{request_id}")
async def get_request(request_id: str, account: PasscodeAccount, privacy: Privacy) -> Response:
    view = await _owned(privacy, request_id, account.id)
    return json_response(await _body(privacy, view, detail=True))


@router.post("/privacy/v1/requests/{request_id}/confirm")
async def confirm_request(request_id: str, account: PasscodeAccount, privacy: Privacy) -> Response:
    try:
        view = await privacy.repository.requests.confirm(account_id=account.id, request_id=request_id)
    except RequestNotFound:
        raise ApiError(404, "Privacy request not found") from None
    except RequestConflict as exc:
        raise ApiError(409, str(exc)) from None
    return json_response(await _body(privacy, view))


class DenyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    basis: str = Field(min_length=3, max_length=500)


@router.post("/privacy/v1/requests/{request_id}/deny")
async def deny_request(
    request_id: str, request: Request, account: PasscodeAccount, privacy: Privacy
) -> Response:
    """The controller refuses a request it has not let start (e.g. identity not verified), with the basis."""
    deny_in = await read_model(request, DenyIn, _LIMITS)
    try:
        view = await privacy.repository.requests.deny(
            account_id=account.id, request_id=request_id, basis=deny_in.basis
        )
    except RequestNotFound:
        raise ApiError(404, "Privacy request not found") from None
    except RequestConflict as exc:
        raise ApiError(409, str(exc)) from None
    return json_response(await _body(privacy, view))


@router.post("/privacy/v1/requests/{request_id}/extend")
async def extend_request(
    request_id: str, request: Request, account: PasscodeAccount, privacy: Privacy
) -> Response:
    extend_in = await read_model(request, ExtendIn, _LIMITS)
    try:
        view = await privacy.repository.requests.extend(
            account_id=account.id, request_id=request_id, months=extend_in.months, reason=extend_in.reason
        )
    except RequestNotFound:
        raise ApiError(404, "Privacy request not found") from None
    except (ExtensionRefused, RequestConflict) as exc:
        raise ApiError(422, str(exc)) from None
    return json_response(await _body(privacy, view))


@router.post("/privacy/v1/requests/{request_id}/retry")
async def retry_request(request_id: str, account: PasscodeAccount, privacy: Privacy) -> Response:
    """Re-queue a request that stopped retrying (``failed``), from where its progress stands. Repeating the call
    changes nothing: ``requeued`` is false when the request was already queued or running."""
    try:
        view, requeued = await privacy.repository.requests.requeue(
            account_id=account.id, request_id=request_id
        )
    except RequestNotFound:
        raise ApiError(404, "Privacy request not found") from None
    except RequestConflict as exc:
        raise ApiError(409, str(exc)) from None
    if requeued:
        log.info("privacy request re-queued", extra={"request": view.id, "account": account.id})
    return json_response({**await _body(privacy, view), "requeued": requeued})


@router.get("/privacy/v1/requests/{request_id}/export")
async def download_export(
    request_id: str,
    privacy: Privacy,
    expires: Annotated[str, Query(max_length=20)] = "",
    signature: Annotated[str, Query(max_length=128)] = "",
) -> Response:
    """The archive, for whoever holds a valid, unexpired signed link (the link is the credential)."""
    view = await linked_request(
        privacy, request_id, expires=expires, signature=signature, missing="Export not found"
    )
    path = archive_path(privacy.settings.resolved_export_dir(), request_id)
    ready = view.type == "export" and view.status == "completed"
    if not (ready or (is_offboarding(view) and "archive" in view.progress[OFFBOARDING])):
        raise ApiError(404, "Export not found")
    if view.export_erased_at is not None or not path.exists():
        raise ApiError(410, "This export has been erased after its retention period")
    return FileResponse(path, media_type="application/zip", filename=f"privacy-export-{request_id}.zip")


@router.get("/privacy/v1/inventory")
async def inventory(account: PasscodeAccount, privacy: Privacy) -> Response:
    return json_response(build_inventory(privacy.settings))


async def _owned(privacy: PrivacyService, request_id: str, account_id: str) -> RequestView:
    try:
        return await privacy.repository.requests.get(request_id, account_id=account_id)
    except RequestNotFound:
        raise ApiError(404, "Privacy request not found") from None

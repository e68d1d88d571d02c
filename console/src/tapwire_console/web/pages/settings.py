"""Settings (admins): account settings, credentials, console users and roles, the audit log."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_console.web.api_client import ApiResult
from tapwire_console.web.frame import (
    Change,
    ConsoleWeb,
    PageFailed,
    SignedIn,
    Viewer,
    Web,
    form_value,
    redirect,
    render,
)

router = APIRouter()

CAP_CHANNELS = ("all", "email", "push", "sms", "webhook")
ROLES = ("admin", "marketer", "analyst", "privacy")


async def _page(
    web: ConsoleWeb,
    viewer: Viewer,
    *,
    status: int = 200,
    failure: ApiResult | None = None,
    form: dict[str, Any] | None = None,
    notice: str | None = None,
    secret: dict[str, Any] | None = None,
    invitation: dict[str, Any] | None = None,
    before: str | None = None,
) -> Response:
    settings, credentials, users, audit = await asyncio.gather(
        viewer.api.get("/account/v1/settings"),
        viewer.api.get("/account/v1/credentials"),
        viewer.api.get("/account/v1/users"),
        viewer.api.get("/account/v1/audit", {"before": before, "limit": 25}),
    )
    if not settings.ok:
        raise PageFailed(settings)
    return render(
        web,
        "settings.html",
        viewer=viewer,
        active="Settings",
        status=status,
        settings=settings.body["settings"],
        form=form,
        failure=failure,
        notice=notice,
        secret=secret,
        invitation=invitation,
        credentials=credentials.body.get("credentials", []),
        users=users.body.get("users", []),
        audit=audit.body.get("entries", []),
        next_before=audit.body.get("next_before"),
        cap_channels=CAP_CHANNELS,
        roles=ROLES,
    )


@router.get("/console/settings")
async def settings_page(request: Request, viewer: SignedIn, web: Web) -> Response:
    return await _page(web, viewer, before=request.query_params.get("before"))


def _settings_patch(form: Any) -> dict[str, Any]:
    origins = [line.strip() for line in str(form.get("cors_origins") or "").splitlines() if line.strip()]
    caps: dict[str, list[dict[str, int]]] = {}
    for channel in CAP_CHANNELS:
        limit, hours = form_value(form, f"cap_{channel}_limit"), form_value(form, f"cap_{channel}_hours")
        if limit or hours:
            caps[channel] = [
                {"limit": _int(limit), "window_s": int(float(hours or "0") * 3600) if _number(hours) else -1}
            ]
    quiet_start, quiet_end = form_value(form, "quiet_start"), form_value(form, "quiet_end")
    concurrency = form_value(form, "upload_concurrency")
    return {
        "cors_origins": origins or None,
        "client_ingestion": form.get("client_ingestion") == "on",
        "privacy_jurisdiction": form_value(form, "privacy_jurisdiction") or None,
        "privacy_webhook_url": form_value(form, "privacy_webhook_url") or None,
        "frequency_caps": caps or None,
        "quiet_hours": {
            "start": quiet_start,
            "end": quiet_end,
            "timezone": form_value(form, "quiet_timezone") or "UTC",
            "drop": form.get("quiet_drop") == "on",
        }
        if quiet_start or quiet_end
        else None,
        "upload_concurrency": _int(concurrency) if concurrency else None,
    }


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


@router.post("/console/settings/account")
async def save_settings(request: Request, viewer: Change, web: Web) -> Response:
    form = await request.form()
    result = await viewer.api.patch("/account/v1/settings", _settings_patch(form))
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result, form=dict(form))
    return await _page(web, viewer, notice="Settings saved.")


@router.post("/console/settings/credentials")
async def issue_credential(request: Request, viewer: Change, web: Web) -> Response:
    form = await request.form()
    result = await viewer.api.post(
        "/account/v1/credentials",
        {"kind": form_value(form, "kind"), "revoke_others": form.get("revoke_others") == "on"},
    )
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result)
    if result.body["credential"]["kind"] == "passcode" and result.body["revoked"] and viewer.email is None:
        # This session was opened with a passcode the rotation just ended: show the secret on a page of its own.
        return render(web, "secret_once.html", viewer=None, secret=result.body["credential"])
    return await _page(web, viewer, secret=result.body["credential"])


@router.post("/console/settings/credentials/{credential_id}/revoke")
async def revoke_credential(request: Request, credential_id: int, viewer: Change, web: Web) -> Response:
    result = await viewer.api.delete(f"/account/v1/credentials/{credential_id}")
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result)
    return redirect(request, "/console/settings#credentials")


@router.post("/console/settings/users")
async def invite(request: Request, viewer: Change, web: Web) -> Response:
    form = await request.form()
    result = await viewer.api.post(
        "/account/v1/users",
        {
            "email": form_value(form, "email"),
            "name": form_value(form, "name"),
            "role": form_value(form, "role"),
        },
    )
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result, form=dict(form))
    return await _page(web, viewer, invitation={"user": result.body["user"], **result.body["invitation"]})


@router.post("/console/settings/users/{user_id}/role")
async def change_role(request: Request, user_id: int, viewer: Change, web: Web) -> Response:
    form = await request.form()
    result = await viewer.api.patch(f"/account/v1/users/{user_id}", {"role": form_value(form, "role")})
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result)
    return redirect(request, "/console/settings#users")


@router.post("/console/settings/users/{user_id}/reset")
async def reset(request: Request, user_id: int, viewer: Change, web: Web) -> Response:
    result = await viewer.api.post(f"/account/v1/users/{user_id}/reset")
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result)
    return await _page(web, viewer, invitation={"user": result.body["user"], **result.body["invitation"]})


@router.post("/console/settings/users/{user_id}/remove")
async def remove(request: Request, user_id: int, viewer: Change, web: Web) -> Response:
    result = await viewer.api.delete(f"/account/v1/users/{user_id}")
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result)
    return redirect(request, "/console/settings#users")


@router.post("/console/settings/delete-account")
async def delete_account(request: Request, viewer: Change, web: Web) -> Response:
    """The account's deletion (the privacy worker's offboarding). Every session ends with its first pass, so the
    answer is a page of its own with the signed link that follows the job and, once written, the archive."""
    form = await request.form()
    result = await viewer.api.post("/privacy/v1/offboarding", {"confirm": form_value(form, "confirm")})
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result, form=dict(form))
    return render(web, "account_deleted.html", viewer=None, status=202, job=result.body)

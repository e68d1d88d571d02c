"""Privacy (privacy officers and admins): the request queue against its legal deadlines, each request's
per-store progress and completion record, extensions, confirming or denying end users' direct requests, new
requests, and the data inventory."""

from __future__ import annotations

import asyncio
import datetime as dt
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
SUBJECT_FIELDS = ("identity", "email", "phone", "objectId")
STATUSES = ("referred", "pending", "in_progress", "awaiting_sweep", "completed", "denied", "failed")


def deadline(request: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Due date (the extended one when extended), whole days left (negative when late), and how urgent."""
    due_raw = request.get("extended_until") or request.get("due_at")
    due = dt.datetime.fromisoformat(str(due_raw).replace("Z", "+00:00"))
    finished = request.get("status") in ("completed", "denied")
    days_left = (due.date() - now.date()).days
    state = (
        "done"
        if finished
        else ("late" if request.get("overdue") or days_left < 0 else ("soon" if days_left <= 7 else "ok"))
    )
    return {"due": due.strftime("%Y-%m-%d"), "days_left": days_left, "state": state}


@router.get("/console/privacy")
async def queue(request: Request, viewer: SignedIn, web: Web) -> Response:
    return await _queue(web, viewer, status_filter=request.query_params.get("status") or None)


async def _queue(
    web: ConsoleWeb,
    viewer: Viewer,
    *,
    status_filter: str | None = None,
    failure: ApiResult | None = None,
    status: int = 200,
    form: dict[str, Any] | None = None,
) -> Response:
    listing, inventory = await asyncio.gather(
        viewer.api.get("/privacy/v1/requests", {"status": status_filter}),
        viewer.api.get("/privacy/v1/inventory"),
    )
    if not listing.ok:
        raise PageFailed(listing)
    now = dt.datetime.now(dt.UTC)
    requests = [{**r, "deadline": deadline(r, now)} for r in listing.body.get("requests", [])]
    requests.sort(key=lambda r: (r["deadline"]["state"] == "done", r["deadline"]["days_left"]))
    return render(
        web,
        "privacy.html",
        viewer=viewer,
        active="Privacy",
        status=status,
        requests=requests,
        status_filter=status_filter or "",
        statuses=STATUSES,
        counts={
            "open": sum(1 for r in requests if r["deadline"]["state"] != "done"),
            "late": sum(1 for r in requests if r["deadline"]["state"] == "late"),
            "referred": sum(1 for r in requests if r["status"] == "referred"),
        },
        inventory=inventory.body.get("stores", []) if inventory.ok else [],
        failure=failure,
        form=form or {},
        subject_fields=SUBJECT_FIELDS,
    )


@router.post("/console/privacy/requests")
async def submit(request: Request, viewer: Change, web: Web) -> Response:
    form = await request.form()
    subject = {name: form_value(form, name) for name in SUBJECT_FIELDS if form_value(form, name)}
    body: dict[str, Any] = {"type": form_value(form, "type"), "subject": subject or None}
    result = await viewer.api.post("/privacy/v1/requests", body)
    if not result.ok:
        return await _queue(web, viewer, failure=result, status=result.status, form=dict(form))
    return redirect(request, f"/console/privacy/{result.body['id']}")


@router.get("/console/privacy/{request_id}")
async def detail_page(request_id: str, viewer: SignedIn, web: Web) -> Response:
    return await detail(request_id, viewer, web)


async def detail(
    request_id: str, viewer: Viewer, web: ConsoleWeb, *, failure: ApiResult | None = None, status: int = 200
) -> Response:
    found = await viewer.api.get(f"/privacy/v1/requests/{request_id}")
    if not found.ok:
        raise PageFailed(found)
    record = found.body
    return render(
        web,
        "privacy_request.html",
        viewer=viewer,
        active="Privacy",
        status=status,
        r=record,
        deadline=deadline(record, dt.datetime.now(dt.UTC)),
        failure=failure,
    )


async def _action(
    request: Request, viewer: Viewer, web: ConsoleWeb, request_id: str, *, action: str, body: dict[str, Any]
) -> Response:
    result = await viewer.api.post(f"/privacy/v1/requests/{request_id}/{action}", body)
    if not result.ok:
        return await detail(request_id, viewer, web, failure=result, status=result.status)
    return redirect(request, f"/console/privacy/{request_id}")


@router.post("/console/privacy/{request_id}/confirm")
async def confirm(request: Request, request_id: str, viewer: Change, web: Web) -> Response:
    return await _action(request, viewer, web, request_id, action="confirm", body={})


@router.post("/console/privacy/{request_id}/deny")
async def deny(request: Request, request_id: str, viewer: Change, web: Web) -> Response:
    form = await request.form()
    return await _action(
        request, viewer, web, request_id, action="deny", body={"basis": form_value(form, "basis")}
    )


@router.post("/console/privacy/{request_id}/extend")
async def extend(request: Request, request_id: str, viewer: Change, web: Web) -> Response:
    form = await request.form()
    months = form_value(form, "months")
    return await _action(
        request,
        viewer,
        web,
        request_id,
        action="extend",
        body={"months": int(months) if months.isdigit() else 0, "reason": form_value(form, "reason")},
    )


@router.post("/console/privacy/{request_id}/retry")
async def retry(request: Request, request_id: str, viewer: Change, web: Web) -> Response:
    return await _action(request, viewer, web, request_id, action="retry", body={})

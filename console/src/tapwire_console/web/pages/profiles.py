"""Profiles: find a person by identity, email or phone; their profile with properties and timeline."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_console.web.frame import Change, PageFailed, SignedIn, Web, form_value, redirect, render

router = APIRouter()


@router.get("/console/profiles")
async def find(request: Request, viewer: SignedIn, web: Web) -> Response:
    q = request.query_params.get("q", "").strip()
    found = await viewer.api.get("/query/v1/profiles/find", {"q": q}) if q else None
    if found is not None and not found.ok and found.status not in (400, 422):
        raise PageFailed(found)
    return render(
        web,
        "profiles.html",
        viewer=viewer,
        active="Profiles",
        q=q,
        profiles=found.body.get("profiles", []) if found is not None else None,
        error=found.error if found is not None and not found.ok else None,
    )


@router.get("/console/profiles/{user_key:path}")
async def profile(request: Request, user_key: str, viewer: SignedIn, web: Web) -> Response:
    identity = request.query_params.get("identity") or user_key
    key = quote(user_key, safe="")
    # The record, the timeline and the merged keys are independent reads: asked at once, a ClickHouse server
    # answers them side by side. Consent needs the record's email and phone, so it comes after.
    record, timeline, identity_of = await asyncio.gather(
        viewer.api.get("/1/profile.json", {"identity": identity}),
        viewer.api.get(
            f"/query/v1/profiles/{key}/timeline", {"before_ms": request.query_params.get("before_ms")}
        ),
        viewer.api.get(f"/query/v1/profiles/{key}/identity"),
    )
    if record.status == 404:
        record = await viewer.api.get("/1/profile.json", {"email": identity})
    if not record.ok and record.status != 404:
        raise PageFailed(record)
    if not timeline.ok:
        raise PageFailed(timeline)
    data = record.body.get("record", {}) if record.ok else {}
    consent = await viewer.api.get(
        "/messaging/v1/consent",
        {"user_key": user_key, "email": data.get("email"), "phone": data.get("phone")},
    )
    return render(
        web,
        "profile.html",
        viewer=viewer,
        active="Profiles",
        user_key=user_key,
        record=data,
        properties=sorted((data.get("profileData") or {}).items()),
        summary=sorted((data.get("events") or {}).items()),
        timeline=timeline.body.get("events", []),
        next_before_ms=timeline.body.get("next_before_ms"),
        found=record.ok,
        user_keys=identity_of.body.get("user_keys", []) if identity_of.ok else [],
        devices=identity_of.body.get("devices", []) if identity_of.ok else [],
        consent=consent.body.get("consent", []) if consent.ok else None,
    )


@router.post("/console/profiles/{user_key:path}/privacy")
async def privacy_request(request: Request, user_key: str, viewer: Change, web: Web) -> Response:
    """Export or erase this person's data: a privacy request naming them by the identifiers the page showed."""
    form = await request.form()
    subject = {
        name: form_value(form, name) for name in ("identity", "email", "phone") if form_value(form, name)
    }
    result = await viewer.api.post(
        "/privacy/v1/requests",
        {"type": form_value(form, "type"), "subject": subject or {"identity": user_key}},
    )
    if not result.ok:
        raise PageFailed(result)
    return redirect(request, f"/console/privacy/{result.body['id']}")

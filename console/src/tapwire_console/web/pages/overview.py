"""Overview: 30 days of events and people, top events, the last five minutes, ingestion health."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_console.web.frame import PageFailed, SignedIn, SignInRequired, Web, current_viewer, render
from tapwire_console.web.pages.sign_in import sign_in_page

router = APIRouter()


@router.get("/")
@router.get("/console")
async def overview(request: Request, web: Web) -> Response:
    try:
        viewer = await current_viewer(request, web)
    except SignInRequired:
        return sign_in_page(request, web)
    to = request.query_params.get("to")
    activity, health = await asyncio.gather(
        viewer.api.get("/query/v1/activity", {"to": to}), viewer.api.get("/account/v1/ingestion")
    )
    if not activity.ok and activity.status != 400:
        raise PageFailed(activity)
    body = activity.body if activity.ok else {"days": [], "top_events": [], "last_5_minutes": {}}
    days = body.get("days", [])
    return render(
        web,
        "overview.html",
        viewer=viewer,
        active="Overview",
        activity=body,
        error=None if activity.ok else activity.error,
        chart={
            "x": [d["date"] for d in days],
            "series": [
                {"label": "Events", "values": [d["events"] for d in days]},
                {"label": "People (approx.)", "values": [d["users"] for d in days]},
            ],
        },
        totals={
            "events": sum(d["events"] for d in days),
            "peak_users": max((d["users"] for d in days), default=0),
        },
        health=health.body.get("ingestion", {}) if health.ok else {"available": False},
        to=to or "",
    )


@router.get("/console/overview/recent")
async def recent(viewer: SignedIn, web: Web) -> Response:
    """The refreshing "last five minutes" card (htmx polls it)."""
    activity = await viewer.api.get("/query/v1/activity", {"top": 1})
    return render(
        web,
        "partials/recent.html",
        viewer=viewer,
        recent=activity.body.get("last_5_minutes", {}) if activity.ok else {},
    )

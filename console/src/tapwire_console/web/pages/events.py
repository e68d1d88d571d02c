"""Events: the live stream of the latest events with filters, and the discovered schema."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_console.web.frame import PageFailed, SignedIn, Web, render

router = APIRouter()


@router.get("/console/events")
async def events_page(request: Request, viewer: SignedIn, web: Web) -> Response:
    name = request.query_params.get("name", "").strip()
    identity = request.query_params.get("identity", "").strip()
    latest, schema = await asyncio.gather(
        viewer.api.get("/query/v1/events/latest", {"name": name, "identity": identity}),
        viewer.api.get("/query/v1/schema", {"to": request.query_params.get("to")}),
    )
    for result in (latest, schema):
        if not result.ok and result.status not in (400, 422):
            raise PageFailed(result)
    return render(
        web,
        "events.html",
        viewer=viewer,
        active="Events",
        events=latest.body.get("events", []),
        schema=schema.body.get("events", []),
        error=None if latest.ok and schema.ok else (latest.error if not latest.ok else schema.error),
        name=name,
        identity=identity,
    )


@router.get("/console/events/stream")
async def stream(request: Request, viewer: SignedIn, web: Web) -> Response:
    """The stream's table alone, which the page re-fetches every few seconds."""
    latest = await viewer.api.get(
        "/query/v1/events/latest",
        {"name": request.query_params.get("name"), "identity": request.query_params.get("identity")},
    )
    return render(web, "partials/event_rows.html", viewer=viewer, events=latest.body.get("events", []))

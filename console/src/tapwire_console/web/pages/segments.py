"""Segments: saved segments, the builder with its live audience size, and trends, funnels and retention."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_console.web import segment_builder as builder
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
TRENDS = ("daily", "weekly", "monthly")


def _builder_context(tree: builder.Node) -> dict[str, Any]:
    return {
        "tree": tree,
        "kind_labels": builder.KIND_LABELS,
        "leaf_kinds": builder.LEAF_KINDS,
        "property_operators": builder.PROPERTY_OPERATORS,
        "count_operators": builder.COUNT_OPERATORS,
        "aggregate_functions": builder.AGGREGATE_FUNCTIONS,
        "max_depth": builder.MAX_DEPTH,
    }


@router.get("/console/segments")
async def segments_page(request: Request, viewer: SignedIn, web: Web) -> Response:
    tab = request.query_params.get("analyze", "trends")
    params = dict(request.query_params)
    listing, analysis, schema = await asyncio.gather(
        viewer.api.get("/segments"),
        _analysis(viewer, tab, params),
        viewer.api.get("/query/v1/schema", {"to": _day(params.get("to"))}),
    )
    if not listing.ok:
        raise PageFailed(listing)
    return render(
        web,
        "segments.html",
        viewer=viewer,
        active="Segments",
        segments=listing.body.get("segments", []),
        tab=tab,
        params=params,
        analysis=analysis,
        event_names=[e["name"] for e in schema.body.get("events", [])] if schema.ok else [],
        trends=TRENDS,
    )


def _day(text: str | None) -> str | None:
    return text.replace("-", "") if text else None


async def _analysis(viewer: Viewer, tab: str, params: dict[str, str]) -> dict[str, Any] | None:
    """Runs the analysis the query string asks for (nothing until an event is chosen)."""
    window = {"from": _day(params.get("from")), "to": _day(params.get("to"))}
    if tab == "trends" and params.get("event"):
        trend = params.get("trend") if params.get("trend") in TRENDS else "daily"
        body = {
            "event_name": params["event"],
            "from": window["from"] or "20260101",
            "to": window["to"] or "20261231",
            "unique": params.get("unique") == "on",
            "groups": {"series": {"trend_type": trend}},
        }
        result = await viewer.api.post("/1/counts/trends.json", body)
        series = result.body.get("series", {}) if result.ok else {}
        return {
            "result": result,
            "chart": {
                "x": list(series),
                "series": [
                    {"label": "People" if body["unique"] else "Events", "values": list(series.values())}
                ],
            },
            "rows": list(series.items()),
        }
    if tab == "funnel" and params.get("steps"):
        steps = [s.strip() for s in params["steps"].split(",") if s.strip()]
        hours = params.get("hours") or "24"
        body = {
            "steps": steps,
            "within_seconds": int(float(hours) * 3600) if hours.replace(".", "", 1).isdigit() else 0,
        }
        result = await viewer.api.post("/query/v1/funnel", body | {k: v for k, v in window.items() if v})
        rows = result.body.get("steps", []) if result.ok else []
        return {
            "result": result,
            "chart": {
                "x": [r["event_name"] for r in rows],
                "series": [{"label": "People", "values": [r["people"] for r in rows]}],
            },
            "rows": rows,
        }
    if tab == "retention" and params.get("first_event"):
        body = {
            "first_event": params["first_event"],
            "return_event": params.get("return_event") or params["first_event"],
            "period": "week" if params.get("period") == "week" else "day",
            "periods": int(params.get("periods") or 7) if (params.get("periods") or "7").isdigit() else 7,
        }
        result = await viewer.api.post("/query/v1/retention", body | {k: v for k, v in window.items() if v})
        return {
            "result": result,
            "cohorts": result.body.get("cohorts", []) if result.ok else [],
            "periods": body["periods"],
        }
    return None


async def _builder_page(
    web: ConsoleWeb,
    viewer: Viewer,
    *,
    tree: builder.Node,
    name: str = "",
    segment: dict[str, Any] | None = None,
    json_mode: bool = False,
    json_text: str = "",
    failure: ApiResult | None = None,
    status: int = 200,
) -> Response:
    schema = await viewer.api.get("/query/v1/schema")
    definition = _definition(tree, json_mode, json_text)
    return render(
        web,
        "segment_builder.html",
        viewer=viewer,
        active="Segments",
        status=status,
        name=name,
        segment=segment,
        json_mode=json_mode,
        json_text=json_text or json.dumps(definition, indent=2),
        definition=definition,
        failure=failure,
        event_names=[e["name"] for e in schema.body.get("events", [])] if schema.ok else [],
        **_builder_context(tree),
    )


def _definition(tree: builder.Node, json_mode: bool, json_text: str) -> Any:
    if not json_mode:
        return builder.definition(tree)
    try:
        return json.loads(json_text or "{}")
    except ValueError:
        return json_text


@router.get("/console/segments/new")
async def new_segment(viewer: SignedIn, web: Web) -> Response:
    return await _builder_page(web, viewer, tree=builder.empty_root())


@router.post("/console/segments/builder")
async def edit(request: Request, viewer: Change, web: Web) -> Response:
    """A builder button: add or remove a condition; answers the builder (a partial for htmx)."""
    form = await request.form()
    tree = builder.apply(builder.tree_from_form(form), form_value(form, "op"))
    json_mode = form.get("json_mode") == "on"
    if request.headers.get("hx-request") == "true":
        return render(
            web, "partials/builder.html", viewer=viewer, json_mode=json_mode, **_builder_context(tree)
        )
    return await _builder_page(
        web,
        viewer,
        tree=tree,
        name=form_value(form, "name"),
        json_mode=json_mode,
        json_text=str(form.get("json") or ""),
    )


async def _count(viewer: Viewer, definition: Any) -> ApiResult:
    if not isinstance(definition, dict):
        return ApiResult(400, {"message": "the JSON is not valid"})
    return await viewer.api.post("/1/counts/profiles.json", definition)


@router.post("/console/segments/count")
async def count(request: Request, viewer: Change, web: Web) -> Response:
    """The live audience size for the builder's current state (htmx, debounced by the page)."""
    form = await request.form()
    definition = _definition(
        builder.tree_from_form(form), form.get("json_mode") == "on", str(form.get("json") or "")
    )
    result = await _count(viewer, definition)
    return render(web, "partials/audience_count.html", viewer=viewer, result=result, definition=definition)


@router.get("/console/segments/count/{req_id}")
async def count_poll(req_id: int, viewer: SignedIn, web: Web) -> Response:
    """A count still running: polled until it answers."""
    result = await viewer.api.get("/1/counts/profiles.json", {"req_id": req_id})
    return render(web, "partials/audience_count.html", viewer=viewer, result=result, definition=None)


@router.post("/console/segments/save")
async def save(request: Request, viewer: Change, web: Web) -> Response:
    form = await request.form()
    tree = builder.tree_from_form(form)
    json_mode = form.get("json_mode") == "on"
    json_text = str(form.get("json") or "")
    definition = _definition(tree, json_mode, json_text)
    result = await viewer.api.post("/segments", {"name": form_value(form, "name"), "definition": definition})
    if not result.ok:
        return await _builder_page(
            web,
            viewer,
            tree=tree,
            name=form_value(form, "name"),
            json_mode=json_mode,
            json_text=json_text,
            failure=result,
            status=result.status,
        )
    return redirect(request, f"/console/segments/{result.body['id']}")


@router.get("/console/segments/{segment_id}")
async def open_segment(segment_id: str, viewer: SignedIn, web: Web) -> Response:
    found = await viewer.api.get(f"/segments/{segment_id}")
    if not found.ok:
        raise PageFailed(found)
    segment = found.body["segment"]
    try:
        tree, json_mode = builder.tree_from_definition(segment["definition"]), False
    except builder.NotRepresentable:
        tree, json_mode = builder.empty_root(), True
    return await _builder_page(
        web,
        viewer,
        tree=tree,
        name=segment["name"],
        segment=segment,
        json_mode=json_mode,
        json_text=json.dumps(segment["definition"], indent=2) if json_mode else "",
    )

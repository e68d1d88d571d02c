"""Campaigns: the list with status, creating one (channel, audience, content with a Liquid preview for a
sample member, schedule, caps, quiet hours, A/B variants and a control group), its report, stopping it."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
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
CHANNELS = ("email", "push", "sms", "webhook")
CONTENT_FIELDS = {
    "email": ("subject", "body", "html"),
    "push": ("title", "body"),
    "sms": ("body",),
    "webhook": ("body",),
}
REPORT_FIGURES = ("sent", "failed", "viewed", "clicked", "unsubscribed")


@router.get("/console/campaigns")
async def campaign_list(viewer: SignedIn, web: Web) -> Response:
    listing = await viewer.api.get("/1/targets/list.json")
    if not listing.ok:
        raise PageFailed(listing)
    campaigns = sorted(listing.body.get("targets", []), key=lambda c: -int(c["id"]))
    return render(web, "campaigns.html", viewer=viewer, active="Campaigns", campaigns=campaigns)


async def _form(
    web: ConsoleWeb,
    viewer: Viewer,
    *,
    values: dict[str, Any] | None = None,
    failure: ApiResult | None = None,
    status: int = 200,
) -> Response:
    segments, defaults = await asyncio.gather(
        viewer.api.get("/segments"), viewer.api.get("/account/v1/settings/campaign-defaults")
    )
    if not defaults.ok:
        raise PageFailed(defaults)
    quiet = defaults.body.get("quiet_hours") or {}
    initial: dict[str, Any] = {
        "channel": "email",
        "audience": "all",
        "control_group_percent": "0",
        "weight_a": "50",
        "weight_b": "50",
        "respect_frequency_caps": "on",
        "quiet_start": quiet.get("start", ""),
        "quiet_end": quiet.get("end", ""),
        "quiet_timezone": quiet.get("timezone", "UTC"),
        "quiet_drop": "on" if quiet.get("drop") else "",
        "goal_hours": "24",
    }
    return render(
        web,
        "campaign_new.html",
        viewer=viewer,
        active="Campaigns",
        status=status,
        values=initial | (values or {}),
        failure=failure,
        segments=segments.body.get("segments", []) if segments.ok else [],
        channels=CHANNELS,
    )


@router.get("/console/campaigns/new")
async def new_campaign(request: Request, viewer: SignedIn, web: Web) -> Response:
    segment = request.query_params.get("segment")
    return await _form(web, viewer, values={"audience": segment} if segment else None)


def _content(form: FormData, channel: str, variant: str) -> dict[str, str]:
    return {
        name: str(form.get(f"{variant}_{name}") or "")
        for name in CONTENT_FIELDS.get(channel, ())
        if str(form.get(f"{variant}_{name}") or "").strip()
    }


def _number(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


def campaign_body(form: FormData) -> dict[str, Any]:
    """The native campaign request the form describes; the API validates it."""
    channel = form_value(form, "channel")
    body: dict[str, Any] = {"name": form_value(form, "name"), "channel": channel}
    audience = form_value(form, "audience")
    if audience in ("", "all"):
        body["segment"] = "all"
    else:
        body["segment_id"] = audience
    if form.get("ab_test") == "on":
        body["variants"] = [
            {
                "name": "A",
                "weight": _number(form_value(form, "weight_a"), 50),
                "content": _content(form, channel, "a"),
            },
            {
                "name": "B",
                "weight": _number(form_value(form, "weight_b"), 50),
                "content": _content(form, channel, "b"),
            },
        ]
    else:
        body["content"] = _content(form, channel, "a")
    body["control_group_percent"] = _number(form_value(form, "control_group_percent") or "0", -1)
    when = form_value(form, "when")
    if when:
        try:
            body["when"] = dt.datetime.fromisoformat(when).strftime("%Y%m%d %H:%M")
        except ValueError:
            body["when"] = when
    body["respect_frequency_caps"] = form.get("respect_frequency_caps") == "on"
    cap_limit, cap_hours = form_value(form, "cap_limit"), form_value(form, "cap_hours")
    if cap_limit or cap_hours:
        body["caps"] = [{"limit": int(_number(cap_limit, 0)), "window_s": _number(cap_hours, 0) * 3600}]
    if form_value(form, "quiet_start") or form_value(form, "quiet_end"):
        body["quiet_hours"] = {
            "start": form_value(form, "quiet_start"),
            "end": form_value(form, "quiet_end"),
            "timezone": form_value(form, "quiet_timezone") or "UTC",
            "drop": form.get("quiet_drop") == "on",
        }
    goal = form_value(form, "goal_event")
    if goal:
        body["conversion_goal"] = {
            "event": goal,
            "window_s": _number(form_value(form, "goal_hours"), 24) * 3600,
        }
    if channel == "webhook":
        body["webhook"] = {
            "url": form_value(form, "webhook_url"),
            "secret": form_value(form, "webhook_secret"),
        }
    return body


@router.post("/console/campaigns")
async def create(request: Request, viewer: Change, web: Web) -> Response:
    form = await request.form()
    result = await viewer.api.post("/messaging/v1/campaigns", campaign_body(form))
    if not result.ok:
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
        return await _form(web, viewer, values=values, failure=result, status=result.status)
    return redirect(request, f"/console/campaigns/{result.body['id']}")


async def _sample_profile(viewer: Viewer, form: FormData) -> tuple[str, dict[str, Any]]:
    """Who the preview is for: the identity typed, else the first member of the chosen segment."""
    identity = form_value(form, "preview_identity")
    audience = form_value(form, "audience")
    if not identity and audience and audience != "all":
        members = await viewer.api.get(f"/segments/{audience}/members", {"batch_size": 1})
        records = members.body.get("records", []) if members.ok else []
        if records:
            identity = str(records[0].get("identity") or records[0].get("email") or "")
    if not identity:
        return "", {}
    found = await viewer.api.get("/1/profile.json", {"identity": identity})
    if not found.ok:
        found = await viewer.api.get("/1/profile.json", {"email": identity})
    record = found.body.get("record", {}) if found.ok else {}
    profile = dict(record.get("profileData") or {})
    profile.update({k: record[k] for k in ("identity", "email", "phone") if record.get(k)})
    return identity, profile


@router.post("/console/campaigns/preview")
async def preview(request: Request, viewer: Change, web: Web) -> Response:
    """The content rendered for a sample member (an htmx partial under the form)."""
    form = await request.form()
    channel = form_value(form, "channel")
    who, profile = await _sample_profile(viewer, form)
    previews = []
    for variant in ("a", "b") if form.get("ab_test") == "on" else ("a",):
        result = await viewer.api.post(
            "/messaging/v1/preview",
            {
                "content": _content(form, channel, variant),
                "profile": profile,
                "campaign_name": form_value(form, "name"),
                "variant": variant.upper(),
            },
        )
        previews.append(
            {
                "variant": variant.upper(),
                "rendered": result.body.get("rendered", {}),
                "error": None if result.ok else result.error,
            }
        )
    return render(
        web, "partials/campaign_preview.html", viewer=viewer, previews=previews, who=who, profile=profile
    )


@router.get("/console/campaigns/{campaign_id}")
async def report(campaign_id: int, viewer: SignedIn, web: Web) -> Response:
    return await _report(web, viewer, campaign_id, "campaign.html")


@router.get("/console/campaigns/{campaign_id}/figures")
async def figures(campaign_id: int, viewer: SignedIn, web: Web) -> Response:
    return await _report(web, viewer, campaign_id, "partials/campaign_figures.html")


async def _report(
    web: ConsoleWeb, viewer: Viewer, campaign_id: int, template: str, failure: ApiResult | None = None
) -> Response:
    found = await viewer.api.get(f"/messaging/v1/campaigns/{campaign_id}")
    if not found.ok:
        raise PageFailed(found)
    campaign = found.body["campaign"]
    variants = campaign.get("variants", {})
    chart = {
        "x": list(REPORT_FIGURES),
        "series": [
            {"label": name, "values": [figures.get(f, 0) for f in REPORT_FIGURES]}
            for name, figures in variants.items()
        ],
    }
    return render(
        web,
        template,
        viewer=viewer,
        active="Campaigns",
        c=campaign,
        chart=chart,
        figures=REPORT_FIGURES,
        failure=failure,
        live=campaign["status"] in ("scheduled", "running"),
    )


@router.post("/console/campaigns/{campaign_id}/stop")
async def stop(request: Request, campaign_id: int, viewer: Change, web: Web) -> Response:
    result = await viewer.api.post(f"/messaging/v1/campaigns/{campaign_id}/stop")
    if not result.ok:
        return await _report(web, viewer, campaign_id, "campaign.html", failure=result)
    return redirect(request, f"/console/campaigns/{campaign_id}")

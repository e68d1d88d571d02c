"""HTTP surface: CleverTap's targets, send, subscribe and message-report endpoints, the native
``/messaging/v1`` API, and the public link endpoints (one-click unsubscribe, open pixel, click redirect)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tapwire_core.control.messaging import consent
from tapwire_core.http.auth import PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_json
from tapwire_core.http.errors import ApiError, json_response
from tapwire_messaging import reports
from tapwire_messaging.audience import AudienceError
from tapwire_messaging.campaign_store import Campaign
from tapwire_messaging.campaigns import Kind, MalformedCampaign, UnrunnableCampaign, parse_campaign
from tapwire_messaging.feedback import Feedback, FeedbackName
from tapwire_messaging.journeys import routes as journey_routes
from tapwire_messaging.service import MessagingService
from tapwire_messaging.signing import BadToken, ExpiredLink, LinkTarget
from tapwire_messaging.triggers.timers import TriggerTimers

router = APIRouter()
links_router = APIRouter()

_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_SEND_CHANNELS = {
    "email": "email",
    "push": "push",
    "sms": "sms",
    "webhook": "webhook",
    "webpush": "webpush",
    "inapp": "inapp",
    "inbox": "inbox",
}


def messaging_service(request: Request) -> MessagingService:
    service: MessagingService | None = getattr(request.app.state, "messaging", None)
    if service is None:
        raise ApiError(503, "messaging is not running in this process")
    return service


Messaging = Annotated[MessagingService, Depends(messaging_service)]


# Campaign bodies are small; an audience is a query, whose own nesting limit is tighter than this depth.
_LIMITS = BodyLimits(max_bytes=1024 * 1024, max_inflated=1024 * 1024, max_values=100_000, max_depth=1000)


async def _body(request: Request, *, empty: Any = None) -> Any:
    return await read_json(request, _LIMITS, empty=empty)


async def _create(
    service: Messaging, account_id: str, payload: Any, *, kind: Kind, estimate: bool
) -> dict[str, Any]:
    """A refused request answers 400 when malformed, 422 when it describes a campaign that cannot run."""
    try:
        spec = parse_campaign(payload, now_ms=service.now_ms(), kind=kind, egress=service.egress)
        if estimate:
            reach = await service.estimate_reach(account_id, spec)
            return {"status": "success", "estimate": {"reach": reach, "channel": spec.channel}}
        campaign_id = await service.create_campaign(account_id, spec)
    except MalformedCampaign as exc:
        raise ApiError(400, str(exc)) from exc
    except (UnrunnableCampaign, AudienceError) as exc:
        raise ApiError(422, str(exc)) from exc
    return {"status": "success", "id": campaign_id, "scheduled_on": reports.ymd(spec.scheduled_ms)}


async def _campaign(service: MessagingService, account_id: str, payload: Any) -> Campaign:
    raw = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ApiError(400, "id (the campaign id, an integer) is required")
    campaign = await service.campaigns.get(raw, account_id)
    if campaign is None:
        raise ApiError(404, f"Campaign {raw} not found")
    return campaign


# CleverTap's campaign API.


@router.post("/1/targets/create.json")
async def targets_create(request: Request, account: PasscodeAccount, service: Messaging) -> Response:
    payload = await _body(request)
    estimate = isinstance(payload, dict) and bool(payload.get("estimate_only"))
    return json_response(await _create(service, account.id, payload, kind="campaign", estimate=estimate))


@router.post("/1/targets/estimate.json")
async def targets_estimate(request: Request, account: PasscodeAccount, service: Messaging) -> Response:
    return json_response(
        await _create(service, account.id, await _body(request), kind="campaign", estimate=True)
    )


@router.api_route("/1/targets/list.json", methods=["GET", "POST"])
async def targets_list(request: Request, account: PasscodeAccount, service: Messaging) -> Response:
    payload = await _body(request, empty={})
    start, end = _range(payload)
    campaigns = await service.campaigns.of_account(account.id, start_ms=start, end_ms=end)
    return json_response(
        {
            "status": "success",
            "targets": [
                {
                    "id": c.id,
                    "name": c.name,
                    "status": c.status,
                    "channel": c.channel,
                    "scheduled_on": reports.ymd(c.scheduled_ms),
                }
                for c in campaigns
            ],
        }
    )


@router.post("/1/targets/result.json")
async def targets_result(request: Request, account: PasscodeAccount, service: Messaging) -> Response:
    campaign = await _campaign(service, account.id, await _body(request))
    if campaign.status in ("scheduled", "running"):
        raise ApiError(
            409,
            f"Campaign {campaign.id} is {campaign.status}; results are ready once it has completed or stopped",
        )
    (summary,) = await reports.summaries([campaign], outbox=service.outbox, interactions=service.interactions)
    return json_response({"status": "success", "result": summary})


@router.post("/1/targets/stop.json")
async def targets_stop(request: Request, account: PasscodeAccount, service: Messaging) -> Response:
    campaign = await _campaign(service, account.id, await _body(request))
    await service.campaigns.stop(campaign.id, service.now_ms())
    return json_response({"status": "success", "id": campaign.id})


@router.post("/1/send/{channel}.json")
async def send_to_identities(
    channel: str, request: Request, account: PasscodeAccount, service: Messaging
) -> Response:
    if channel not in _SEND_CHANNELS:
        raise ApiError(404, f"unknown channel {channel!r}; use one of {sorted(_SEND_CHANNELS)}")
    payload = await _body(request)
    if not isinstance(payload, dict) or "to" not in payload:
        raise ApiError(400, 'to is required, e.g. {"Identity": ["ann"]}')
    body = {"name": payload.get("name") or f"{channel} send", **payload, "channel": _SEND_CHANNELS[channel]}
    body.pop("target_mode", None)
    created = await _create(service, account.id, body, kind="transactional", estimate=False)
    return json_response(
        {"status": "success", "message": "Added to queue for processing", "id": created["id"]}
    )


# Subscriptions.


_SUBSCRIBE_KINDS: dict[str, tuple[consent.SubjectKind, str]] = {
    "email": ("email", "email"),
    "phone": ("phone", "sms"),
    "whatsapp": ("phone", "whatsapp"),
}


# ``Unsubscribe`` stops promotional messages; ``OptOut`` (tapwire's) every message on the channel, transactional
# ones included, until a ``Resubscribe``.
_SUBSCRIBE_STATES: dict[str, consent.ConsentState] = {
    "Unsubscribe": "unsubscribed",
    "Resubscribe": "subscribed",
    "OptOut": "opted_out",
}


@router.post("/1/subscribe")
@router.post("/1/subscribe/", include_in_schema=False)
async def subscribe(request: Request, account: PasscodeAccount, service: Messaging) -> Response:
    payload = await _body(request)
    if not isinstance(payload, dict) or not isinstance(payload.get("d"), list):
        raise ApiError(400, 'Body must be an object with a list of items under "d"')
    items = payload["d"]
    if len(items) > 1000:
        raise ApiError(400, f"At most 1000 items per request, got {len(items)}")
    processed, unprocessed = 0, []
    for position, item in enumerate(items, start=1):
        problem = _subscription_problem(item)
        if problem:
            unprocessed.append(
                {
                    "status": "fail",
                    "code": 400,
                    "error": f"{problem}. Skipped record number : {position}",
                    "record": item,
                }
            )
            continue
        kind, channel = _SUBSCRIBE_KINDS[item["type"]]
        now = service.now_ms()
        state = _SUBSCRIBE_STATES[item["status"]]
        await consent.set_consent(
            service.store.engine,
            account_id=account.id,
            kind=kind,
            subject=item["value"],
            channel=channel,
            state=state,
            source="subscribe_api",
            now_ms=now,
        )
        if state != "subscribed":
            service.sender.note_opt_out(
                account.id, kind, item["value"], channel, now, every_message=state == "opted_out"
            )
        processed += 1
    status = "success" if not unprocessed else ("partial" if processed else "fail")
    return json_response({"status": status, "processed": processed, "unprocessed": unprocessed})


def _subscription_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "Each item must be an object"
    if item.get("type") not in _SUBSCRIBE_KINDS:
        return f"type must be one of {sorted(_SUBSCRIBE_KINDS)}"
    if not isinstance(item.get("value"), str) or not item["value"].strip():
        return "value must be a non-empty string"
    if item.get("status") not in _SUBSCRIBE_STATES:
        return "status must be Unsubscribe, Resubscribe or OptOut"
    return None


# Reports.


@router.post("/1/message/report.json")
async def message_report(request: Request, account: PasscodeAccount, service: Messaging) -> Response:
    payload = await _body(request)
    if not isinstance(payload, dict) or "from" not in payload or "to" not in payload:
        raise ApiError(400, "from and to (YYYYMMDD) are required")
    start, end = _range(payload)
    campaigns = await service.campaigns.of_account(account.id, start_ms=start, end_ms=end)
    channels = _multi(payload.get("channel"))
    statuses = _multi(payload.get("status"))
    if channels:
        wanted = {"webhooks": "webhook"}
        campaigns = [c for c in campaigns if c.channel in {wanted.get(ch, ch) for ch in channels}]
    if statuses:
        campaigns = [c for c in campaigns if c.status in statuses]
    labels = _multi(payload.get("label"))
    if labels:
        campaigns = [c for c in campaigns if set(c.rules.labels) & labels]
    return json_response(
        {
            "status": "success",
            "messages": await reports.summaries(
                campaigns, outbox=service.outbox, interactions=service.interactions
            ),
        }
    )


def _multi(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {part.strip() for part in value.split(",") if part.strip()}
    if isinstance(value, list):
        return {str(part) for part in value}
    raise ApiError(400, "filters must be a list or a comma-separated string")


def _range(payload: Any) -> tuple[int | None, int | None]:
    if not isinstance(payload, dict):
        raise ApiError(400, "Body must be a JSON object")
    bounds: list[int | None] = []
    for key, extra_days in (("from", 0), ("to", 1)):
        raw = payload.get(key)
        if raw is None:
            bounds.append(None)
            continue
        try:
            day = datetime.strptime(str(int(str(raw))), "%Y%m%d").replace(tzinfo=UTC)
        except ValueError as exc:
            raise ApiError(400, f"{key} must be a date YYYYMMDD, got {raw!r}") from exc
        bounds.append(int(day.timestamp() * 1000) + extra_days * 86_400_000)
    return bounds[0], bounds[1]


# Native API.


@router.post("/messaging/v1/campaigns")
async def native_create(request: Request, account: PasscodeAccount, service: Messaging) -> Response:
    payload = await _body(request)
    estimate = isinstance(payload, dict) and bool(payload.get("estimate_only"))
    return json_response(
        await _create(service, account.id, payload, kind="campaign", estimate=estimate),
        201 if not estimate else 200,
    )


@router.post("/messaging/v1/sends")
async def native_send(request: Request, account: PasscodeAccount, service: Messaging) -> Response:
    """A transactional send to named users; ``priority`` (default 10) orders it ahead of campaigns."""
    return json_response(
        await _create(service, account.id, await _body(request), kind="transactional", estimate=False), 201
    )


@router.get("/messaging/v1/campaigns/{campaign_id}")
async def native_get(campaign_id: int, account: PasscodeAccount, service: Messaging) -> Response:
    campaign = await service.campaigns.get(campaign_id, account.id)
    if campaign is None:
        raise ApiError(404, f"Campaign {campaign_id} not found")
    (summary,) = await reports.summaries([campaign], outbox=service.outbox, interactions=service.interactions)
    detail = await reports.per_variant(
        campaign, outbox=service.outbox, interactions=service.interactions, warehouse=service.warehouse
    )
    extra: dict[str, Any] = {"rules": campaign.rules.to_json()}
    if "trigger" in campaign.audience:
        extra["trigger"] = campaign.audience["trigger"]
        extra["timers"] = await TriggerTimers(service.store.engine).status_counts(campaign.id)
    return json_response({"status": "success", "campaign": summary | detail | extra})


@router.post("/messaging/v1/campaigns/{campaign_id}/stop")
async def native_stop(campaign_id: int, account: PasscodeAccount, service: Messaging) -> Response:
    campaign = await service.campaigns.get(campaign_id, account.id)
    if campaign is None:
        raise ApiError(404, f"Campaign {campaign_id} not found")
    await service.campaigns.stop(campaign.id, service.now_ms())
    return json_response({"status": "success", "id": campaign.id})


# Public links: no account headers, the signature is the credential.


async def _interaction(
    service: MessagingService, target: LinkTarget, kind: str, name: FeedbackName, *, occurrence: str = ""
) -> None:
    now = service.now_ms()
    first = await service.interactions.record(
        campaign_id=target.campaign_id, variant=target.variant, user_key=target.user_key, kind=kind, ts_ms=now
    )
    if first or kind == "clicked":
        await service.publisher.publish(
            [
                Feedback(
                    target.account_id,
                    target.user_key,
                    name,
                    target.campaign_id,
                    target.variant,
                    target.channel,
                    now,
                    occurrence=occurrence,
                )
            ]
        )


async def _verify(service: MessagingService, purpose: str, token: str) -> LinkTarget:
    try:
        return await service.links.verify(purpose, token)
    except ExpiredLink as exc:
        raise ApiError(410, "This link has expired") from exc
    except BadToken as exc:
        raise ApiError(404, "This link is not valid") from exc


@links_router.post("/m/u/{token}")
async def one_click_unsubscribe(token: str, service: Messaging) -> Response:
    """RFC 8058 one-click unsubscribe: the mail client POSTs ``List-Unsubscribe=One-Click`` here."""
    target = await _verify(service, "unsubscribe", token)
    now = service.now_ms()
    await consent.set_consent(
        service.store.engine,
        account_id=target.account_id,
        kind="user",
        subject=target.user_key,
        channel=target.channel,
        state="unsubscribed",
        source="one_click",
        now_ms=now,
    )
    service.sender.note_opt_out(target.account_id, "user", target.user_key, target.channel, now)
    await _interaction(service, target, "unsubscribed", "Channel Unsubscribed")
    return json_response({"status": "success", "message": "You are unsubscribed"})


@links_router.get("/m/u/{token}")
async def unsubscribe_page(token: str, service: Messaging) -> Response:
    """A confirmation page; a GET never unsubscribes (link scanners follow GETs)."""
    await _verify(service, "unsubscribe", token)
    return HTMLResponse(
        '<!doctype html><title>Unsubscribe</title><form method="post">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        "<p>Stop receiving these messages?</p><button>Unsubscribe</button></form>"
    )


@links_router.get("/m/o/{token}.gif")
async def open_pixel(token: str, service: Messaging) -> Response:
    target = await _verify(service, "open", token)
    # One use per link per minute reaches the database; reloads and proxies' prefetches stop here.
    if service.links.uses.admit(f"o{token}", service.now_s()) is not None:
        await _interaction(service, target, "viewed", "Notification Viewed")
    return Response(_PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@links_router.get("/m/c/{token}")
async def click(token: str, service: Messaging) -> Response:
    target = await _verify(service, "click", token)
    if not target.url:
        raise ApiError(404, "This link is not valid")
    # A click counts once per link per minute: repeats only redirect.
    occurrence = service.links.uses.admit(f"c{token}", service.now_s())
    if occurrence is not None:
        await _interaction(service, target, "clicked", "Notification Clicked", occurrence=occurrence)
    return RedirectResponse(target.url, status_code=302)


from tapwire_messaging.consent_routes import router as _consent_router  # noqa: E402
from tapwire_messaging.preview_routes import router as _preview_router  # noqa: E402

router.include_router(_preview_router)
router.include_router(_consent_router)


# Journeys have their own module; they share this router's mount points.
router.include_router(journey_routes.router)

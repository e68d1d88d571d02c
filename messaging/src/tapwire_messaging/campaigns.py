"""Campaign requests, CleverTap's shape and the native one, parsed and validated into a :class:`CampaignSpec`.

Every problem raises a :class:`CampaignRefused` whose message names it: :class:`MalformedCampaign` for a request
that is not shaped as the API takes it, :class:`UnrunnableCampaign` for one that is well-formed but cannot run
(a bad template, a quiet-hours window that does not parse). The routes turn them into HTTP errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from tapwire_core.egress import EgressPolicy, UnsafeUrl, check_url
from tapwire_messaging.audience import AudienceError, ExplicitIdentities
from tapwire_messaging.campaign_rules import (
    ACROSS_CHANNELS,
    CampaignRules,
    ConversionGoal,
    FrequencyCap,
    WebhookTarget,
)
from tapwire_messaging.channels.base import CHANNELS, ChannelName
from tapwire_messaging.rules import QuietHours
from tapwire_messaging.templates import TemplateError, compile_content
from tapwire_messaging.triggers.spec import TriggerRefused, TriggerSpec, parse_trigger

Kind = Literal["campaign", "transactional"]

# CleverTap's target_mode names → our channels.
_TARGET_MODES: Mapping[str, ChannelName] = {
    "push": "push",
    "email": "email",
    "sms": "sms",
    "webhook": "webhook",
    "webhooks": "webhook",
    # Web push is push to browsers: the push channel (its consent, caps and reports) to ``web`` devices.
    "webpush": "push",
    # Messages CleverTap's own SDKs fetch and show: a popup in the page or app, an entry in its inbox.
    "inapp": "inapp",
    "in-app": "inapp",
    "inbox": "inbox",
    "webinbox": "inbox",
}
DEFAULT_CUTOFF_S = {"campaign": 24 * 3600, "transactional": 3600}
# A triggered campaign's cutoff ends the trigger (events after it trigger nothing): by default, none to speak of.
TRIGGER_CUTOFF_S = 100 * 365 * 86400
PRIORITY = {"campaign": 0, "transactional": 10}
MAX_IDENTITIES = 1000


class CampaignRefused(ValueError):
    """A campaign request that cannot be accepted; the message names the problem."""


class MalformedCampaign(CampaignRefused):
    """The request is not shaped as a campaign request (a missing field, a value of the wrong type)."""


class UnrunnableCampaign(CampaignRefused):
    """The request is well-formed but describes a campaign that cannot run (a template that does not compile,
    a weight that is not positive, too many recipients)."""


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    kind: Kind
    channel: ChannelName
    priority: int
    audience: dict[str, Any]
    variants: list[dict[str, Any]]
    rules: CampaignRules
    scheduled_ms: int
    cutoff_ms: int

    @property
    def trigger(self) -> TriggerSpec | None:
        """The trigger of a behaviour-triggered campaign; None for a campaign sent to an audience."""
        raw = self.audience.get("trigger")
        return None if raw is None else TriggerSpec.from_stored(raw)


def parse_campaign(
    payload: Any, *, now_ms: int, kind: Kind = "campaign", egress: EgressPolicy | None = None
) -> CampaignSpec:
    """A campaign from CleverTap's ``targets/create`` body or the native body (a superset). ``egress`` is the
    operator's allow-list, against which a webhook URL is checked."""
    if not isinstance(payload, dict):
        raise MalformedCampaign("Body must be a JSON object")
    mode = payload.get("channel", payload.get("target_mode"))
    if isinstance(mode, str) and mode.lower() == "webpush" and "devices" not in payload:
        payload = {**payload, "devices": ["web"]}
    name = payload.get("name")
    if not isinstance(name, str) or not name.strip():
        raise MalformedCampaign("name is required")
    channel = _channel(payload)
    audience = _audience(payload)
    variants = _variants(payload, channel)
    rules = _rules(payload, channel, egress or EgressPolicy())
    scheduled_ms = _when(payload.get("when", "now"), now_ms)
    default_cutoff_s = TRIGGER_CUTOFF_S if "trigger" in audience else DEFAULT_CUTOFF_S[kind]
    cutoff_s = payload.get("cutoff_s", default_cutoff_s)
    if not isinstance(cutoff_s, int | float) or isinstance(cutoff_s, bool) or cutoff_s <= 0:
        raise UnrunnableCampaign("cutoff_s must be a positive number of seconds")
    priority = payload.get("priority", PRIORITY[kind])
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise UnrunnableCampaign("priority must be an integer")
    return CampaignSpec(
        name=name.strip()[:200],
        kind=kind,
        channel=channel,
        priority=priority,
        audience=audience,
        variants=variants,
        rules=rules,
        scheduled_ms=scheduled_ms,
        cutoff_ms=scheduled_ms + int(cutoff_s * 1000),
    )


def _channel(payload: Mapping[str, Any]) -> ChannelName:
    raw = payload.get("channel", payload.get("target_mode", "push"))
    channel = _TARGET_MODES.get(str(raw).lower()) if isinstance(raw, str) else None
    if channel is None:
        raise UnrunnableCampaign(f"channel/target_mode must be one of {list(CHANNELS)}, got {raw!r}")
    return channel


def _audience(payload: Mapping[str, Any]) -> dict[str, Any]:
    given = [key for key in _AUDIENCE_PARSERS if key in payload]
    if len(given) != 1:
        raise MalformedCampaign(
            "exactly one of where, segment, segment_id, to (identities) or trigger is required"
        )
    key = given[0]
    return _AUDIENCE_PARSERS[key](key, payload[key])


def _trigger_audience(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedCampaign("trigger must be an object with at least an event")
    try:
        return {"trigger": parse_trigger(value).to_stored()}
    except TriggerRefused as exc:
        raise UnrunnableCampaign(str(exc)) from exc


def _where_audience(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedCampaign("where must be a CQL object")
    return {"where": value}


def _segment_audience(key: str, value: Any) -> dict[str, Any]:
    # CleverTap's segment "all" is everyone: an empty where.
    if key == "segment" and value == "all":
        return {"where": {}}
    return {"segment_id": str(value)}


def _identities_audience(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedCampaign(f'{key} must map identity kinds to lists, e.g. {{"Identity": ["ann"]}}')
    try:
        keys = ExplicitIdentities(value).user_keys()
    except AudienceError as exc:
        raise UnrunnableCampaign(f"{key}: {exc}") from exc
    if not keys:
        raise UnrunnableCampaign(f"{key} names no recipients")
    if len(keys) > MAX_IDENTITIES:
        raise UnrunnableCampaign(f"{key}: at most {MAX_IDENTITIES} recipients per call, got {len(keys)}")
    return {"identities": value}


# The request keys that name an audience, in the order the refusal lists them, each with its parser (given the
# key it was found under, for the messages).
_AUDIENCE_PARSERS: Mapping[str, Callable[[str, Any], dict[str, Any]]] = {
    "where": _where_audience,
    "segment": _segment_audience,
    "segment_id": _segment_audience,
    "identities": _identities_audience,
    "to": _identities_audience,
    "trigger": _trigger_audience,
}


_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "email": ("subject",),
    "push": ("body",),
    "sms": ("body",),
    "webhook": (),
    "inapp": ("title",),
    "inbox": ("title",),
}
DEFAULT_MESSAGE_TTL_S = {"inapp": 7 * 86400, "inbox": 30 * 86400}
MAX_MESSAGE_TTL_S = 90 * 86400


def _variants(payload: Mapping[str, Any], channel: ChannelName) -> list[dict[str, Any]]:
    raw = payload.get("variants")
    if raw is None:
        raw = [{"name": "A", "weight": 1, "content": payload.get("content")}]
    if not isinstance(raw, list) or not raw or len(raw) > 10:
        raise MalformedCampaign("variants must be a list of 1 to 10 {name, weight, content}")
    variants: list[dict[str, Any]] = []
    for index, variant in enumerate(raw):
        where = f"variants[{index}]"
        if not isinstance(variant, dict):
            raise MalformedCampaign(f"{where} must be an object")
        name = str(variant.get("name", chr(ord("A") + index)))
        if not name or len(name) > 32 or any(v["name"] == name for v in variants):
            raise UnrunnableCampaign(f"{where}.name must be unique and 1-32 characters")
        weight = variant.get("weight", 1)
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= 0:
            raise UnrunnableCampaign(f"{where}.weight must be a positive number")
        content = variant.get("content")
        if not isinstance(content, dict):
            raise MalformedCampaign(
                "content is required"
                if index == 0 and "variants" not in payload
                else f"{where}.content is required",
            )
        missing = [f for f in _REQUIRED[channel] if not isinstance(content.get(f), str) or not content.get(f)]
        if channel == "email" and not (content.get("body") or content.get("html")):
            missing.append("body")
        if missing:
            raise UnrunnableCampaign(f"content.{missing[0]} is required for {channel} messages")
        try:
            compile_content(content)
        except TemplateError as exc:
            prefix = "" if "variants" not in payload else f"{where}."
            raise UnrunnableCampaign(f"{prefix}{exc}") from exc
        variants.append({"name": name, "weight": float(weight), "content": content})
    return variants


def _rules(payload: Mapping[str, Any], channel: ChannelName, egress: EgressPolicy) -> CampaignRules:
    control = payload.get("control_group_percent", 0)
    if not isinstance(control, int | float) or isinstance(control, bool) or not 0 <= control < 100:
        raise UnrunnableCampaign("control_group_percent must be a number in [0, 100)")
    caps = _caps(payload.get("caps", []))
    quiet_hours = _quiet_hours(payload.get("quiet_hours"))
    throttle = payload.get("throttle_per_s")
    if throttle is not None and (
        not isinstance(throttle, int | float) or isinstance(throttle, bool) or throttle <= 0
    ):
        raise UnrunnableCampaign("throttle_per_s must be a positive number")
    goal = _conversion_goal(payload.get("conversion_goal"))
    webhook = _webhook(payload.get("webhook"), egress) if channel == "webhook" else None
    devices = payload.get("devices")
    all_devices = payload.get("send_to_all_devices", False)
    if not isinstance(all_devices, bool):
        raise MalformedCampaign("send_to_all_devices must be true or false")
    event = payload.get("event")
    if event is not None and not isinstance(event, dict):
        raise UnrunnableCampaign("event must be an object of event properties (seen by templates as Event)")
    labels = payload.get("labels", [])
    message_ttl_s = _message_ttl(payload.get("message_ttl_s"), channel)
    return CampaignRules(
        control_group_percent=float(control),
        respect_frequency_caps=bool(payload.get("respect_frequency_caps", True)),
        caps=caps,
        quiet_hours=quiet_hours,
        throttle_per_s=None if throttle is None else float(throttle),
        conversion_goal=goal,
        webhook=webhook,
        devices=None
        if devices is None
        else tuple(str(d).lower() for d in devices)
        if isinstance(devices, list)
        else (),
        send_to_all_devices=all_devices if channel == "push" else None,
        event=event,
        labels=tuple(str(label) for label in labels) if isinstance(labels, list) else (),
        message_ttl_s=message_ttl_s,
    )


def _message_ttl(raw: Any, channel: ChannelName) -> float | None:
    """How long an in-app or inbox message waits for the user's SDK (and stays in the inbox); None elsewhere."""
    if channel not in DEFAULT_MESSAGE_TTL_S:
        return None
    if raw is None:
        return float(DEFAULT_MESSAGE_TTL_S[channel])
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not 60 <= raw <= MAX_MESSAGE_TTL_S:
        raise UnrunnableCampaign(f"message_ttl_s must be a number of seconds from 60 to {MAX_MESSAGE_TTL_S}")
    return float(raw)


def _caps(caps: Any) -> tuple[FrequencyCap, ...]:
    if not isinstance(caps, list):
        raise UnrunnableCampaign("caps must be a list of {limit, window_s}")
    for index, cap in enumerate(caps):
        if (
            not isinstance(cap, dict)
            or not isinstance(cap.get("limit"), int)
            or cap["limit"] < 1
            or not isinstance(cap.get("window_s"), int | float)
            or cap["window_s"] <= 0
            or cap.get("channel", ACROSS_CHANNELS) != ACROSS_CHANNELS
        ):
            raise UnrunnableCampaign(
                f'caps[{index}] must be {{limit: int >= 1, window_s: seconds > 0, channel?: "all"}}'
            )
    return tuple(FrequencyCap.from_json(c) for c in caps)


def _quiet_hours(quiet: Any) -> QuietHours | None:
    if quiet is None:
        return None
    if not isinstance(quiet, dict):
        raise UnrunnableCampaign("quiet_hours must be {start, end, timezone?, drop?}")
    try:
        return QuietHours.parse(quiet)
    except ValueError as exc:
        raise UnrunnableCampaign(str(exc)) from exc


def _conversion_goal(goal: Any) -> ConversionGoal | None:
    if goal is None:
        return None
    if not isinstance(goal, dict) or not isinstance(goal.get("event"), str) or not goal["event"]:
        raise UnrunnableCampaign("conversion_goal must be {event, window_s?}")
    return ConversionGoal(goal["event"], float(goal.get("window_s", 86400)))


def _webhook(hook: Any, egress: EgressPolicy) -> WebhookTarget:
    if not isinstance(hook, dict) or not isinstance(hook.get("secret"), str) or len(hook["secret"]) < 16:
        raise UnrunnableCampaign(
            "webhook campaigns need webhook: {url: http(s) URL, secret: >= 16 characters}"
        )
    try:
        check_url(hook.get("url"), egress)
    except UnsafeUrl as exc:
        raise UnrunnableCampaign(f"webhook.url {exc}") from exc
    return WebhookTarget(hook["url"], hook["secret"])


def _when(value: Any, now_ms: int) -> int:
    if value in (None, "now"):
        return now_ms
    if isinstance(value, str):
        try:
            moment = datetime.strptime(value, "%Y%m%d %H:%M").replace(tzinfo=UTC)
        except ValueError as exc:
            raise MalformedCampaign(f'when must be "now" or "YYYYMMDD HH:MM", got {value!r}') from exc
        return int(moment.timestamp() * 1000)
    raise MalformedCampaign(f'when must be "now" or "YYYYMMDD HH:MM", got {value!r}')

"""Campaign requests, CleverTap's shape and the native one, parsed and validated into a :class:`CampaignSpec`.

Every problem raises ApiError: 400 for a malformed request, 422 for one that is well-formed but cannot run
(a bad template, a quiet-hours window that does not parse, a channel without a provider).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from tapwire_core.egress import EgressPolicy, UnsafeUrl, check_url
from tapwire_core.http.errors import ApiError
from tapwire_messaging.audience import AudienceError, ExplicitIdentities
from tapwire_messaging.channels.base import CHANNELS, ChannelName
from tapwire_messaging.rules import QuietHours
from tapwire_messaging.templates import TemplateError, compile_content

Kind = Literal["campaign", "transactional"]

# CleverTap's target_mode names → our channels.
_TARGET_MODES: Mapping[str, ChannelName] = {
    "push": "push",
    "email": "email",
    "sms": "sms",
    "webhook": "webhook",
    "webhooks": "webhook",
}
DEFAULT_CUTOFF_S = {"campaign": 24 * 3600, "transactional": 3600}
PRIORITY = {"campaign": 0, "transactional": 10}
MAX_IDENTITIES = 1000


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    kind: Kind
    channel: ChannelName
    priority: int
    audience: dict[str, Any]
    variants: list[dict[str, Any]]
    rules: dict[str, Any]
    scheduled_ms: int
    cutoff_ms: int


def parse_campaign(
    payload: Any, *, now_ms: int, kind: Kind = "campaign", egress: EgressPolicy | None = None
) -> CampaignSpec:
    """A campaign from CleverTap's ``targets/create`` body or the native body (a superset). ``egress`` is the
    operator's allow-list, against which a webhook URL is checked."""
    if not isinstance(payload, dict):
        raise ApiError(400, "Body must be a JSON object")
    name = payload.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "name is required")
    channel = _channel(payload)
    audience = _audience(payload)
    variants = _variants(payload, channel)
    rules = _rules(payload, channel, egress or EgressPolicy())
    scheduled_ms = _when(payload.get("when", "now"), now_ms)
    cutoff_s = payload.get("cutoff_s", DEFAULT_CUTOFF_S[kind])
    if not isinstance(cutoff_s, int | float) or isinstance(cutoff_s, bool) or cutoff_s <= 0:
        raise ApiError(422, "cutoff_s must be a positive number of seconds")
    priority = payload.get("priority", PRIORITY[kind])
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise ApiError(422, "priority must be an integer")
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
        raise ApiError(422, f"channel/target_mode must be one of {list(CHANNELS)}, got {raw!r}")
    return channel


def _audience(payload: Mapping[str, Any]) -> dict[str, Any]:
    given = [key for key in ("where", "segment", "segment_id", "identities", "to") if key in payload]
    if len(given) != 1:
        raise ApiError(400, "exactly one of where, segment, segment_id or to (identities) is required")
    key = given[0]
    value = payload[key]
    if key == "where":
        if not isinstance(value, dict):
            raise ApiError(400, "where must be a CQL object")
        return {"where": value}
    if key == "segment":
        if value == "all":
            return {"where": {}}
        return {"segment_id": str(value)}
    if key == "segment_id":
        return {"segment_id": str(value)}
    if not isinstance(value, dict):
        raise ApiError(400, f'{key} must map identity kinds to lists, e.g. {{"Identity": ["ann"]}}')
    try:
        keys = ExplicitIdentities(value).user_keys()
    except AudienceError as exc:
        raise ApiError(422, f"{key}: {exc}") from exc
    if not keys:
        raise ApiError(422, f"{key} names no recipients")
    if len(keys) > MAX_IDENTITIES:
        raise ApiError(422, f"{key}: at most {MAX_IDENTITIES} recipients per call, got {len(keys)}")
    return {"identities": value}


_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "email": ("subject",),
    "push": ("body",),
    "sms": ("body",),
    "webhook": (),
}


def _variants(payload: Mapping[str, Any], channel: ChannelName) -> list[dict[str, Any]]:
    raw = payload.get("variants")
    if raw is None:
        raw = [{"name": "A", "weight": 1, "content": payload.get("content")}]
    if not isinstance(raw, list) or not raw or len(raw) > 10:
        raise ApiError(400, "variants must be a list of 1 to 10 {name, weight, content}")
    variants: list[dict[str, Any]] = []
    for index, variant in enumerate(raw):
        where = f"variants[{index}]"
        if not isinstance(variant, dict):
            raise ApiError(400, f"{where} must be an object")
        name = str(variant.get("name", chr(ord("A") + index)))
        if not name or len(name) > 32 or any(v["name"] == name for v in variants):
            raise ApiError(422, f"{where}.name must be unique and 1-32 characters")
        weight = variant.get("weight", 1)
        if not isinstance(weight, int | float) or isinstance(weight, bool) or weight <= 0:
            raise ApiError(422, f"{where}.weight must be a positive number")
        content = variant.get("content")
        if not isinstance(content, dict):
            raise ApiError(
                400,
                "content is required"
                if index == 0 and "variants" not in payload
                else f"{where}.content is required",
            )
        missing = [f for f in _REQUIRED[channel] if not isinstance(content.get(f), str) or not content.get(f)]
        if channel == "email" and not (content.get("body") or content.get("html")):
            missing.append("body")
        if missing:
            raise ApiError(422, f"content.{missing[0]} is required for {channel} messages")
        try:
            compile_content(content)
        except TemplateError as exc:
            prefix = "" if "variants" not in payload else f"{where}."
            raise ApiError(422, f"{prefix}{exc}") from exc
        variants.append({"name": name, "weight": float(weight), "content": content})
    return variants


def _rules(payload: Mapping[str, Any], channel: ChannelName, egress: EgressPolicy) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    control = payload.get("control_group_percent", 0)
    if not isinstance(control, int | float) or isinstance(control, bool) or not 0 <= control < 100:
        raise ApiError(422, "control_group_percent must be a number in [0, 100)")
    rules["control_group_percent"] = float(control)
    rules["respect_frequency_caps"] = bool(payload.get("respect_frequency_caps", True))
    caps = payload.get("caps", [])
    if not isinstance(caps, list):
        raise ApiError(422, "caps must be a list of {limit, window_s}")
    for index, cap in enumerate(caps):
        if (
            not isinstance(cap, dict)
            or not isinstance(cap.get("limit"), int)
            or cap["limit"] < 1
            or not isinstance(cap.get("window_s"), int | float)
            or cap["window_s"] <= 0
        ):
            raise ApiError(422, f"caps[{index}] must be {{limit: int >= 1, window_s: seconds > 0}}")
    rules["caps"] = [{"limit": int(c["limit"]), "window_s": float(c["window_s"])} for c in caps]
    quiet = payload.get("quiet_hours")
    if quiet is not None:
        if not isinstance(quiet, dict):
            raise ApiError(422, "quiet_hours must be {start, end, timezone?, drop?}")
        try:
            QuietHours.parse(quiet)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        rules["quiet_hours"] = quiet
    throttle = payload.get("throttle_per_s")
    if throttle is not None:
        if not isinstance(throttle, int | float) or isinstance(throttle, bool) or throttle <= 0:
            raise ApiError(422, "throttle_per_s must be a positive number")
        rules["throttle_per_s"] = float(throttle)
    goal = payload.get("conversion_goal")
    if goal is not None:
        if not isinstance(goal, dict) or not isinstance(goal.get("event"), str) or not goal["event"]:
            raise ApiError(422, "conversion_goal must be {event, window_s?}")
        rules["conversion_goal"] = {"event": goal["event"], "window_s": float(goal.get("window_s", 86400))}
    if channel == "webhook":
        hook = payload.get("webhook")
        if not isinstance(hook, dict) or not isinstance(hook.get("secret"), str) or len(hook["secret"]) < 16:
            raise ApiError(
                422, "webhook campaigns need webhook: {url: http(s) URL, secret: >= 16 characters}"
            )
        try:
            check_url(hook.get("url"), egress)
        except UnsafeUrl as exc:
            raise ApiError(422, f"webhook.url {exc}") from exc
        rules["webhook"] = {"url": hook["url"], "secret": hook["secret"]}
    devices = payload.get("devices")
    if devices is not None:
        rules["devices"] = [str(d).lower() for d in devices] if isinstance(devices, list) else []
    all_devices = payload.get("send_to_all_devices", False)
    if not isinstance(all_devices, bool):
        raise ApiError(400, "send_to_all_devices must be true or false")
    if channel == "push":
        rules["send_to_all_devices"] = all_devices
    event = payload.get("event")
    if event is not None:
        if not isinstance(event, dict):
            raise ApiError(422, "event must be an object of event properties (seen by templates as Event)")
        rules["event"] = event
    labels = payload.get("labels", [])
    rules["labels"] = [str(label) for label in labels] if isinstance(labels, list) else []
    return rules


def _when(value: Any, now_ms: int) -> int:
    if value in (None, "now"):
        return now_ms
    if isinstance(value, str):
        try:
            moment = datetime.strptime(value, "%Y%m%d %H:%M").replace(tzinfo=UTC)
        except ValueError as exc:
            raise ApiError(400, f'when must be "now" or "YYYYMMDD HH:MM", got {value!r}') from exc
        return int(moment.timestamp() * 1000)
    raise ApiError(400, f'when must be "now" or "YYYYMMDD HH:MM", got {value!r}')

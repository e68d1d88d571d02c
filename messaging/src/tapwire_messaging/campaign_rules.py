"""A campaign's rules, typed: who is held out, how often a user may be messaged, when, how fast, and where to.

:class:`CampaignRules` is what the sender reads. It is stored with the campaign as JSON (:meth:`CampaignRules.to_json`,
the shape the native API also shows under ``rules``) and read back with :meth:`CampaignRules.from_json`, which
takes what any version wrote: a missing key means the rule's default. Requests are validated into it by
:func:`tapwire_messaging.campaigns.parse_campaign`; this module only holds and converts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tapwire_messaging.rules import QuietHours

ACROSS_CHANNELS = "all"
"""A frequency cap's scope that counts the user's messages on every channel, not only the campaign's."""


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``limit`` campaigns' messages per user in any rolling ``window_s`` seconds: on the campaign's
    channel, or summed over email, push, SMS and webhook when ``scope`` is :data:`ACROSS_CHANNELS`."""

    limit: int
    window_s: float
    scope: str | None = None

    @property
    def across_channels(self) -> bool:
        return self.scope == ACROSS_CHANNELS

    def to_json(self) -> dict[str, Any]:
        shape: dict[str, Any] = {"limit": self.limit, "window_s": self.window_s}
        if self.scope is not None:
            shape["channel"] = self.scope
        return shape

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FrequencyCap:
        scope = raw.get("channel")
        return cls(int(raw["limit"]), float(raw["window_s"]), scope if scope == ACROSS_CHANNELS else None)


@dataclass(frozen=True, slots=True)
class ConversionGoal:
    """Users who do ``event`` within ``window_s`` seconds after their message count as converted."""

    event: str
    window_s: float

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "window_s": self.window_s}


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where a webhook campaign posts, and the secret its requests are signed with."""

    url: str
    secret: str

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "secret": self.secret}


@dataclass(frozen=True, slots=True)
class CampaignRules:
    control_group_percent: float = 0.0
    """A stable holdout: this share of the audience is recorded as ``control`` and never sent to."""
    respect_frequency_caps: bool = True
    """Whether the account's caps apply on top of :attr:`caps` (transactional sends are never capped)."""
    caps: tuple[FrequencyCap, ...] = ()
    quiet_hours: QuietHours | None = None
    throttle_per_s: float | None = None
    """Messages per second on this channel for the account, per sender process."""
    conversion_goal: ConversionGoal | None = None
    webhook: WebhookTarget | None = None
    """Set for webhook campaigns only."""
    devices: tuple[str, ...] | None = None
    """CleverTap's platform names (``android``, ``ios``) a push is limited to; None for every platform."""
    send_to_all_devices: bool | None = None
    """For a push: one message per live device token (True) or to the latest one only. None on other channels."""
    event: Mapping[str, Any] | None = None
    """Event properties templates see as ``Event`` when the row carries none of its own."""
    labels: tuple[str, ...] = ()
    message_ttl_s: float | None = None
    """In-app and inbox messages: how long one waits for the user's SDK, and stays in its inbox."""

    def to_json(self) -> dict[str, Any]:
        """The stored shape: optional rules appear only when set."""
        stored: dict[str, Any] = {
            "control_group_percent": self.control_group_percent,
            "respect_frequency_caps": self.respect_frequency_caps,
            "caps": [cap.to_json() for cap in self.caps],
        }
        if self.quiet_hours is not None:
            stored["quiet_hours"] = self.quiet_hours.to_json()
        if self.throttle_per_s is not None:
            stored["throttle_per_s"] = self.throttle_per_s
        if self.conversion_goal is not None:
            stored["conversion_goal"] = self.conversion_goal.to_json()
        if self.webhook is not None:
            stored["webhook"] = self.webhook.to_json()
        if self.devices is not None:
            stored["devices"] = list(self.devices)
        if self.send_to_all_devices is not None:
            stored["send_to_all_devices"] = self.send_to_all_devices
        if self.event is not None:
            stored["event"] = dict(self.event)
        stored["labels"] = list(self.labels)
        if self.message_ttl_s is not None:
            stored["message_ttl_s"] = self.message_ttl_s
        return stored

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CampaignRules:
        """Rules as stored by :meth:`to_json` (or by earlier versions, which wrote a subset of the keys)."""
        quiet = raw.get("quiet_hours")
        goal = raw.get("conversion_goal")
        hook = raw.get("webhook")
        devices = raw.get("devices")
        all_devices = raw.get("send_to_all_devices")
        throttle = raw.get("throttle_per_s")
        ttl = raw.get("message_ttl_s")
        return cls(
            control_group_percent=float(raw.get("control_group_percent", 0)),
            respect_frequency_caps=bool(raw.get("respect_frequency_caps", True)),
            caps=tuple(FrequencyCap.from_json(cap) for cap in raw.get("caps", [])),
            quiet_hours=QuietHours.parse(quiet) if quiet else None,
            throttle_per_s=float(throttle) if throttle else None,
            conversion_goal=ConversionGoal(str(goal["event"]), float(goal["window_s"])) if goal else None,
            webhook=WebhookTarget(str(hook["url"]), str(hook["secret"])) if hook else None,
            devices=tuple(str(d) for d in devices) if devices is not None else None,
            send_to_all_devices=bool(all_devices) if all_devices is not None else None,
            event=raw.get("event"),
            labels=tuple(str(label) for label in raw.get("labels", [])),
            message_ttl_s=float(ttl) if ttl else None,
        )

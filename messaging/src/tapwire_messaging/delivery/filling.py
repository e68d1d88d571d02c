"""Filling a campaign's outbox: one row per audience member (per device for a push to all devices).

Each row gets its variant and control-group assignment (stable per campaign and user), its address, and the
user's profile as read now (templates render it; the audience rules check its ``MSG-*`` flags and time zone).
Rows are keyed by (campaign, variant, user, channel, device) and inserted with "do nothing on conflict", so
filling again after a crash adds only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.clock import Clock, epoch_ms
from tapwire_core.control.messaging import consent
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.audience import AudienceResolver
from tapwire_messaging.campaign_store import Campaign, Campaigns
from tapwire_messaging.channels.base import SDK_CHANNELS
from tapwire_messaging.outbox import Outbox
from tapwire_messaging.recipients import RecipientProfile, device_id, load_profiles, push_targets
from tapwire_messaging.rules import assign_variant, in_control_group

# (address, push platform, device) of one message.
_Target = tuple[str, str | None, str]


class OutboxFiller:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        campaigns: Campaigns,
        outbox: Outbox,
        resolver: AudienceResolver,
        warehouse: Warehouse | None,
        clock: Clock,
        on_rows: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._campaigns = campaigns
        self._outbox = outbox
        self.resolver = resolver
        self._warehouse = warehouse
        self._clock = clock
        self._on_rows = on_rows

    async def fill(self, campaign: Campaign) -> int:
        """Write the campaign's outbox rows, one audience chunk at a time, calling ``on_rows`` after each chunk
        (claimers may start on it). Returns the audience size. Ends early, leaving no pending row, when the
        campaign is stopped meanwhile. Raises AudienceError when the audience cannot be evaluated, and what the
        stores raise."""
        source = self.resolver.source(campaign.audience)
        weights = [(str(v["name"]), float(v["weight"])) for v in campaign.variants]
        total = 0
        async for chunk in source.chunks(campaign.account_id):
            profiles = await self._profiles(campaign, chunk)
            dead: set[str] = set()
            if campaign.channel == "push":
                dead = await consent.dead_tokens(
                    self._engine,
                    account_id=campaign.account_id,
                    tokens=[t for p in profiles.values() for t, _ in p.tokens],
                )
            rows: list[dict[str, Any]] = []
            for key in chunk:
                rows += outbox_rows(campaign, weights, profiles[key], dead)
            await self._outbox.add(rows)
            total += len(chunk)
            self._on_rows()
            if await self._campaigns.stopped_among([campaign.id]):
                # Stopped while filling: rows added since the stop must not wait as pending forever.
                await self._campaigns.stop(campaign.id, epoch_ms(self._clock()))
                break
        return total

    async def _profiles(self, campaign: Campaign, chunk: Sequence[str]) -> dict[str, RecipientProfile]:
        if self._warehouse is None:
            return {key: RecipientProfile(key) for key in chunk}
        return await load_profiles(
            self._warehouse,
            account_id=campaign.account_id,
            user_keys=chunk,
            with_tokens=campaign.channel == "push",
        )


def outbox_rows(
    campaign: Campaign, weights: Sequence[tuple[str, float]], profile: RecipientProfile, dead: set[str]
) -> list[dict[str, Any]]:
    """The user's outbox rows: ``control`` for the holdout, ``no_address`` without an address, else one
    ``pending`` row per target. ``weights`` are the campaign's (variant, weight) pairs."""
    key = profile.user_key
    row = {
        "campaign_id": campaign.id,
        "account_id": campaign.account_id,
        "variant": assign_variant(campaign.id, key, weights),
        "user_key": key,
        "channel": campaign.channel,
        "device": "",
        "platform": None,
        "context": {"profile": profile.profile},
        "priority": campaign.priority,
        "due_ms": campaign.scheduled_ms,
        "attempts": 0,
    }
    targets = _targets(campaign, profile, dead)
    if in_control_group(campaign.id, key, campaign.rules.control_group_percent):
        return [row | {"address": targets[0][0] if targets else "", "status": "control"}]
    if not targets:
        return [row | {"address": "", "status": "no_address"}]
    return [
        row
        | {"address": address, "platform": platform, "device": device, "status": "pending"}
        | _subscription(profile, address, platform)
        for address, platform, device in targets
    ]


def _subscription(profile: RecipientProfile, address: str, platform: str | None) -> dict[str, Any]:
    """For a web push row, its subscription's keys join the row's context (the message is encrypted for them)."""
    if platform != "chrome":
        return {}
    keys = profile.subscription_keys.get(address, {})
    return {"context": {"profile": profile.profile, "subscription_keys": keys}}


def _targets(campaign: Campaign, profile: RecipientProfile, dead: set[str]) -> list[_Target]:
    """(address, push platform, device) for each message the user gets; empty without an address. Only a
    push to all devices names the device: any other message is one per user, whatever the address."""
    if campaign.channel == "push":
        all_devices = bool(campaign.rules.send_to_all_devices)
        tokens = push_targets(profile, dead=dead, devices=campaign.rules.devices, all_devices=all_devices)
        return [(token, kind, device_id(token) if all_devices else "") for token, kind in tokens]
    if campaign.channel in SDK_CHANNELS:
        # The message waits for whichever of the user's SDKs asks first: its address is the user.
        return [(profile.user_key, None, "")]
    if campaign.channel == "email":
        address = profile.email
    elif campaign.channel == "sms":
        address = profile.phone
    else:
        assert campaign.rules.webhook is not None, "a webhook campaign has a webhook target"
        address = campaign.rules.webhook.url
    return [(address, None, "")] if address else []

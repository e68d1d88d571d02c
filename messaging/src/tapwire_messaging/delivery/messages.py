"""Rendering a claimed row into the message a provider adapter takes, one shape per channel."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from tapwire_messaging.campaign_store import Campaign
from tapwire_messaging.channels import OutboundMessage
from tapwire_messaging.delivery.campaign_views import CampaignView
from tapwire_messaging.links import Links
from tapwire_messaging.outbox import Claimed
from tapwire_messaging.signing import LinkTarget


def idempotency_key(campaign_id: int, variant: str, user_key: str, channel: str, device: str = "") -> str:
    """The provider idempotency key of an outbox row, from its key. ``device`` (set only for a push to each of a
    user's devices) joins the key when present, so keys of rows without one are what they always were."""
    raw = f"{campaign_id}\x1f{variant}\x1f{user_key}\x1f{channel}"
    if device:
        raw += f"\x1f{device}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def render(row: Claimed, view: CampaignView) -> dict[str, str]:
    """The row's variant rendered for its user; raises TemplateError when the template fails on this data."""
    campaign = view.campaign
    context = {
        "Profile": row.context.get("profile", {}),
        "Event": row.context.get("event") or campaign.rules.event or {},
        "Campaign": {"id": campaign.id, "name": campaign.name, "variant": row.variant},
    }
    return view.content_for(row.variant).render(context)


class MessageBuilder:
    """Turns a rendered row into an :class:`OutboundMessage`: email with tracked links and one-click
    unsubscribe headers, a signed webhook payload, or a push with its platform's data."""

    def __init__(self, links: Links) -> None:
        self._links = links

    def build(self, row: Claimed, campaign: Campaign, rendered: Mapping[str, str]) -> OutboundMessage:
        key = idempotency_key(campaign.id, row.variant, row.user_key, row.channel, row.device)
        if campaign.channel == "email":
            return self._email(key, row, campaign, rendered)
        if campaign.channel == "webhook":
            return _webhook(key, row, campaign, rendered)
        return _push(key, row, campaign, rendered)

    def _email(
        self, key: str, row: Claimed, campaign: Campaign, rendered: Mapping[str, str]
    ) -> OutboundMessage:
        target = LinkTarget(campaign.account_id, campaign.id, row.variant, row.user_key, row.channel)
        unsubscribe = self._links.unsubscribe(target)
        html = rendered.get("html")
        return OutboundMessage(
            key,
            row.address,
            rendered.get("body", ""),
            subject=rendered.get("subject"),
            html=self._links.track_html(html, target) if html else None,
            headers={
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )


def _webhook(key: str, row: Claimed, campaign: Campaign, rendered: Mapping[str, str]) -> OutboundMessage:
    hook = campaign.rules.webhook
    assert hook is not None, "a webhook campaign has a webhook target"
    return OutboundMessage(
        key,
        hook.url,
        rendered.get("body", ""),
        secret=hook.secret,
        data={
            "campaign_id": campaign.id,
            "variant": row.variant,
            "user_key": row.user_key,
            "content": rendered,
            "profile": row.context.get("profile", {}),
        },
    )


def _push(key: str, row: Claimed, campaign: Campaign, rendered: Mapping[str, str]) -> OutboundMessage:
    raw: dict[str, Any] = next(
        (v["content"] for v in campaign.variants if v["name"] == row.variant),
        campaign.variants[0]["content"],
    )
    platform_parts = raw.get("platform_specific", {})
    data: dict[str, Any] = {"wzrk_id": f"{campaign.id}_{row.variant}"}
    if isinstance(platform_parts, dict):
        part = platform_parts.get("ios" if row.platform == "apns" else "android")
        if isinstance(part, dict):
            data.update({k: v for k, v in part.items() if isinstance(v, str | int | float | bool)})
    return OutboundMessage(
        key,
        row.address,
        rendered.get("body", ""),
        title=rendered.get("title"),
        platform=row.platform,
        data=data,
    )

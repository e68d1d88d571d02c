"""Rendering a claimed row into the message a provider adapter takes, one shape per channel."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from tapwire_messaging.campaign_store import Campaign
from tapwire_messaging.campaigns import DEFAULT_MESSAGE_TTL_S
from tapwire_messaging.channels import OutboundMessage
from tapwire_messaging.channels.base import SDK_CHANNELS
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


class ReturnPaths(Protocol):
    """How an email names itself for bounce and complaint reports (``email_feedback.runtime.EmailFeedback``)."""

    def token(self, row_id: int) -> str:
        """The return-path token of outbox row ``row_id``."""
        ...

    def return_path(self, row_id: int) -> str | None:
        """Its VERP envelope sender, or None to keep the sender's address."""
        ...


class MessageBuilder:
    """Turns a rendered row into an :class:`OutboundMessage`: email with tracked links, one-click
    unsubscribe headers and its return-path token, a signed webhook payload, a push with its platform's data,
    or a web push notification with tracked links."""

    def __init__(self, links: Links, return_paths: ReturnPaths | None = None) -> None:
        self._links = links
        self._return_paths = return_paths

    def build(self, row: Claimed, campaign: Campaign, rendered: Mapping[str, str]) -> OutboundMessage:
        key = idempotency_key(campaign.id, row.variant, row.user_key, row.channel, row.device)
        if campaign.channel == "email":
            return self._email(key, row, campaign, rendered)
        if campaign.channel == "webhook":
            return _webhook(key, row, campaign, rendered)
        if campaign.channel in SDK_CHANNELS:
            return self._sdk_message(key, row, campaign, rendered)
        if row.platform == "chrome":
            return self._web_push(key, row, campaign, rendered)
        return _push(key, row, campaign, rendered)

    def _web_push(
        self, key: str, row: Claimed, campaign: Campaign, rendered: Mapping[str, str]
    ) -> OutboundMessage:
        """The notification in the shape CleverTap's service worker (``sw_webpush.js``) shows: ``title``,
        ``notificationOptions`` (``body``, ``icon``, ``image``, ``data.wzrk_id``), ``deepLink`` opened on a
        click, and two tracked links it fetches itself: ``raiseNotificationViewedPath`` when shown and
        ``redirectPath`` (with ``&r=…&b=…&s=true`` appended) when clicked."""
        target = LinkTarget(campaign.account_id, campaign.id, row.variant, row.user_key, row.channel)
        deep_link = rendered.get("deep_link") or rendered.get("url") or ""
        options: dict[str, Any] = {
            "body": rendered.get("body", ""),
            "data": {"wzrk_id": f"{campaign.id}_{row.variant}"},
        }
        for name in ("icon", "image", "badge"):
            if rendered.get(name):
                options[name] = rendered[name]
        payload: dict[str, Any] = {
            "title": rendered.get("title", ""),
            "notificationOptions": options,
            "raiseNotificationViewedPath": self._links.open_pixel(target),
            # The worker appends "&r=…": the click link gets a query for it to extend.
            "redirectPath": self._links.click(target, deep_link or self._links.base) + "?wzrk=1",
        }
        if deep_link:
            payload["deepLink"] = deep_link
        return OutboundMessage(
            key,
            row.address,
            rendered.get("body", ""),
            title=rendered.get("title"),
            platform=row.platform,
            data={"keys": row.context.get("subscription_keys", {}), "payload": payload},
        )

    def _sdk_message(
        self, key: str, row: Claimed, campaign: Campaign, rendered: Mapping[str, str]
    ) -> OutboundMessage:
        """An in-app or inbox message for the user's SDKs, in a neutral shape each SDK's answer is built from
        (``title``, ``body``, ``image``, ``icon``, ``url``, ``button``, plain text). An in-app popup's click
        goes through the tracked click link (``click_link``), which counts it and redirects to ``url``; an
        inbox entry's click is reported by the SDK itself."""
        content = sdk_content(rendered)
        if campaign.channel == "inapp" and "url" in content:
            target = LinkTarget(campaign.account_id, campaign.id, row.variant, row.user_key, row.channel)
            content["click_link"] = self._links.click(target, content["url"])
        ttl_s = campaign.rules.message_ttl_s or DEFAULT_MESSAGE_TTL_S[campaign.channel]
        return OutboundMessage(
            key,
            row.address,
            content.get("body", ""),
            title=content.get("title"),
            data={
                "account_id": campaign.account_id,
                "campaign_id": campaign.id,
                "variant": row.variant,
                "channel": campaign.channel,
                "kind": campaign.kind,
                "user_key": row.user_key,
                "ttl_s": ttl_s,
                "content": content,
            },
        )

    def _email(
        self, key: str, row: Claimed, campaign: Campaign, rendered: Mapping[str, str]
    ) -> OutboundMessage:
        target = LinkTarget(campaign.account_id, campaign.id, row.variant, row.user_key, row.channel)
        unsubscribe = self._links.unsubscribe(target)
        html = rendered.get("html")
        paths = self._return_paths
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
            feedback_token=paths.token(row.id) if paths is not None else None,
            return_path=paths.return_path(row.id) if paths is not None else None,
        )


_SDK_TEXT_FIELDS = ("title", "body", "button")
_SDK_URL_FIELDS = ("image", "icon", "url")
_MAX_SDK_TEXT = 2000
_MAX_URL = 2048


def sdk_content(rendered: Mapping[str, str]) -> dict[str, str]:
    """The rendered fields an SDK message shows: texts cut to 2,000 characters, and only ``http(s)`` URLs
    without quotes or spaces (the SDKs put them into attributes and open them; anything else is left out)."""
    content: dict[str, str] = {}
    for name in _SDK_TEXT_FIELDS:
        value = rendered.get(name, "").strip()
        if value:
            content[name] = value[:_MAX_SDK_TEXT]
    for name in _SDK_URL_FIELDS:
        value = rendered.get(name, "").strip()
        if _safe_url(value):
            content[name] = value
    return content


def _safe_url(value: str) -> bool:
    if not value or len(value) > _MAX_URL or not value.lower().startswith(("https://", "http://")):
        return False
    return not any(c in value for c in "\"'<>` \t\r\n\\")


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

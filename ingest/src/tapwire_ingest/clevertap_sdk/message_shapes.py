"""In-app and inbox messages in the shapes CleverTap's SDKs read from an answer, built from the neutral content
messaging stored (``title``, ``body``, ``image``, ``icon``, ``url``, ``button``, ``click_link``; plain text, and
only ``http(s)`` URLs without quotes or spaces).

**Web SDK** (``clevertap-web-sdk`` 2.5.x, ``clevertap.js``): the answer calls ``$WZRK_WR.tr(msg)`` (JSONP) or
carries ``tr`` (fetch), and ``_tr`` reads

- ``inapp_notifs``: web popups (``commonCampaignUtils.processCampaigns``). ``display.wtarget_type`` 0 is a popup;
  without ``display.proto`` and with ``msgContent.type`` other than 1, ``createTemplate`` builds the box itself
  from ``msgContent.title``, ``msgContent.description`` and ``msgContent.imageUrl`` *as HTML* inside an iframe,
  so the texts are HTML-escaped here; ``display.onClick`` is where a click on it goes (the SDK appends
  ``&t=wc&d=…`` and reads the URL's ``r`` parameter), here the tracked click link, which counts the click and
  redirects. When the popup is shown the SDK raises ``Notification Viewed`` with ``wzrk_id``.
- ``inbox_notifs`` and ``webInboxSetting``: the web inbox (``handleWebInbox``; ``Inbox``/``Message`` custom
  elements). Entries show ``msg[0].title``/``description`` as text (``innerText``) and images by URL; clicking
  one raises ``Notification Clicked`` and opens ``onClickUrl``; an entry scrolled into view in the open inbox
  raises ``Notification Viewed``. The inbox is attached to the page element whose id the account's
  ``web_inbox_selector`` names; every colour of ``webInboxSetting`` is fixed here, since the SDK writes them into
  a style sheet.

Every message says ``display.efc: 1`` (excluded from the SDK's own frequency caps): tapwire's caps were applied
when it was queued, and a message the SDK dropped for its own caps would be recorded delivered yet never shown.

**Android SDK** (``/a1`` answer, ``InAppResponse`` and ``InboxResponse``): ``inapp_notifs`` are
``CTInAppNotification.configureWithJson`` objects (``type`` ``interstitial``, ``ti``, ``wzrk_id``, ``title`` and
``message`` as ``{text, color}``, ``media`` ``{url, content_type}``, ``buttons`` with ``actions``, ``wzrk_ttl``);
``inbox_notifs`` are ``CTMessageDAO.initWithJSON`` objects (``_id``, ``date`` and ``wzrk_ttl`` in epoch seconds,
``wzrk_id``, ``msg`` with ``type`` ``simple`` or ``message-icon`` and one ``content`` cell). The iOS SDK reads
the same keys (``CTInAppNotification``, ``CTInboxNotificationContentItem``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from tapwire_core.control.sdk_messages import PendingMessage

WEB_INBOX_SELECTOR_SETTING: Final = "web_inbox_selector"
# An element id the SDK looks up with document.getElementById.
_SELECTOR: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_WEB_INBOX_STYLES: Final = {
    "panelBackgroundColor": "#FFFFFF",
    "panelBorderColor": "#E0E0E0",
    "header": {"backgroundColor": "#FFFFFF", "titleColor": "#1A1A1A"},
    "closeIconColor": "#1A1A1A",
    "categories": {
        "tabColor": "#F2F2F2",
        "titleColor": "#1A1A1A",
        "selectedTab": {"tabColor": "#1A1A1A", "titleColor": "#FFFFFF"},
    },
    "cards": {
        "backgroundColor": "#FFFFFF",
        "borderColor": "#E0E0E0",
        "titleColor": "#1A1A1A",
        "descriptionColor": "#4A4A4A",
        "buttonColor": "#1A1A1A",
        "buttonTextColor": "#FFFFFF",
        "unreadMarkerColor": "#D0021B",
    },
    "notificationsBadge": {"backgroundColor": "#D0021B", "textColor": "#FFFFFF"},
}
_MAX_INBOX_ENTRIES: Final = 50


def web_inbox_setting(settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The account's ``webInboxSetting`` for the Web SDK, or None when it has no web inbox."""
    selector = settings.get(WEB_INBOX_SELECTOR_SETTING)
    if type(selector) is not str or not _SELECTOR.fullmatch(selector):
        return None
    return {
        "inboxSelector": selector,
        "title": "Inbox",
        "categories": [],
        "maxMsgsInInbox": _MAX_INBOX_ENTRIES,
        "styles": _WEB_INBOX_STYLES,
    }


def web_campaigns(
    messages: Sequence[PendingMessage], inbox_setting: dict[str, Any] | None, *, page_load: bool
) -> dict[str, Any] | None:
    """What the Web SDK's ``tr`` gets for ``messages``; None when there is nothing to say. The inbox setting
    goes with inbox entries and with page loads (a page that shows the inbox before any entry arrived)."""
    tr: dict[str, Any] = {}
    popups = [_web_popup(m) for m in messages if m.channel == "inapp"]
    entries = [_web_inbox_entry(m) for m in messages if m.channel == "inbox"]
    if popups:
        tr["inapp_notifs"] = popups
    if entries:
        tr["inbox_notifs"] = entries
    if inbox_setting is not None and (entries or page_load):
        tr["webInboxSetting"] = inbox_setting
    return tr or None


def _web_popup(message: PendingMessage) -> dict[str, Any]:
    content = message.content
    msg_content: dict[str, Any] = {
        "type": 0,
        "title": html.escape(content.get("title", "")),
        "description": html.escape(content.get("body", "")),
    }
    if content.get("image"):
        msg_content["imageUrl"] = html.escape(content["image"])
    display: dict[str, Any] = {"wtarget_type": 0, "layout": 0, "efc": 1, "theme": "light"}
    if content.get("click_link"):
        display["onClick"] = content["click_link"] + "?r=" + quote(content.get("url", ""), safe="")
    return {"wzrk_id": message.wzrk_id, "display": display, "msgContent": msg_content}


def _web_inbox_entry(message: PendingMessage) -> dict[str, Any]:
    content = message.content
    cell: dict[str, Any] = {"title": content.get("title", ""), "description": content.get("body", "")}
    if content.get("image"):
        cell["imageUrl"] = content["image"]
    if content.get("icon"):
        cell["iconUrl"] = content["icon"]
    if content.get("url"):
        cell["onClickUrl"] = content["url"]
        cell["openUrlInNewTab"] = False
        if content.get("button"):
            cell["buttons"] = [
                {"text": content["button"], "action": "url", "url": content["url"], "openUrlInNewTab": False}
            ]
    template = "text-only"
    if content.get("icon"):
        template = "text-with-icon-and-image" if content.get("image") else "text-with-icon"
    elif content.get("image"):
        template = "text-with-icon-and-image"
    return {
        "wzrk_id": message.wzrk_id,
        "templateType": template,
        "msg": [cell],
        "tags": [],
        "wzrk_ttl": message.expires_ms // 1000,
        "display": {"wtarget_type": 3, "efc": 1},
    }


def mobile_campaigns(messages: Sequence[PendingMessage]) -> dict[str, Any]:
    """The ``/a1`` answer's ``inapp_notifs`` and ``inbox_notifs`` for ``messages`` (keys only when non-empty)."""
    answer: dict[str, Any] = {}
    popups = [_mobile_in_app(m) for m in messages if m.channel == "inapp"]
    entries = [_mobile_inbox_entry(m) for m in messages if m.channel == "inbox"]
    if popups:
        answer["inapp_notifs"] = popups
    if entries:
        answer["inbox_notifs"] = entries
    return answer


def _mobile_in_app(message: PendingMessage) -> dict[str, Any]:
    content = message.content
    in_app: dict[str, Any] = {
        "ti": message.campaign_id,
        "wzrk_id": message.wzrk_id,
        "type": "interstitial",
        "bg": "#FFFFFF",
        "efc": 1,
        "hasPortrait": True,
        "hasLandscape": True,
        "wzrk_ttl": message.expires_ms // 1000,
        "title": {"text": content.get("title", ""), "color": "#1A1A1A"},
        "message": {"text": content.get("body", ""), "color": "#4A4A4A"},
        "buttons": [],
    }
    if content.get("image"):
        in_app["media"] = {"url": content["image"], "content_type": _image_type(content["image"])}
    if content.get("url"):
        in_app["buttons"] = [
            {
                "text": content.get("button") or "Open",
                "color": "#FFFFFF",
                "bg": "#1A1A1A",
                "actions": {"type": "url", "android": content["url"], "ios": content["url"]},
            }
        ]
    return in_app


def _mobile_inbox_entry(message: PendingMessage) -> dict[str, Any]:
    content = message.content
    cell: dict[str, Any] = {
        "title": {"text": content.get("title", ""), "color": "#1A1A1A"},
        "message": {"text": content.get("body", ""), "color": "#4A4A4A"},
        "action": {"hasUrl": False, "hasLinks": False},
    }
    if content.get("icon"):
        cell["icon"] = {"url": content["icon"]}
    if content.get("image"):
        cell["media"] = {"url": content["image"], "content_type": _image_type(content["image"])}
    if content.get("url"):
        link = {"android": {"text": content["url"]}, "ios": {"text": content["url"]}}
        cell["action"] = {"hasUrl": True, "hasLinks": False, "url": link}
    return {
        "_id": message.wzrk_id,
        "wzrk_id": message.wzrk_id,
        "date": message.created_ms // 1000,
        "wzrk_ttl": message.expires_ms // 1000,
        "msg": {
            "type": "message-icon" if content.get("icon") else "simple",
            "bg": "#FFFFFF",
            "orientation": "p",
            "tags": [],
            "content": [cell],
        },
    }


def _image_type(url: str) -> str:
    path = url.split("?", 1)[0].lower()
    if path.endswith(".gif"):
        return "image/gif"
    if path.endswith(".png"):
        return "image/png"
    return "image/jpeg"

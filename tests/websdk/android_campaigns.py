"""The Android SDK's reading of an ``/a1`` answer's campaigns, field by field as its sources read them, over
Java's ``org.json`` semantics (a ``get…`` of a missing key or of the wrong type throws; ``has``/``opt…`` do not).
No Android runtime runs here, so this is how a test holds tapwire's answer to what the SDK accepts.

CleverTap/clevertap-android-sdk, clevertap-core: ``response/InboxResponse.java`` (``inbox_notifs``) →
``inbox/CTInboxController.updateMessages`` → ``inbox/CTMessageDAO.initWithJSON`` (a message without ``_id`` is
dropped) → ``inbox/CTInboxMessage(JSONObject)`` and ``inbox/CTInboxMessageContent.initWithJSON``;
``response/InAppResponse.java`` (``inapp_notifs``, the "legacy" in-apps shown at once) →
``inapp/CTInAppNotification.initWithJSON`` → ``configureWithJson`` (a ``type`` other than ``custom-html``) and
``inapp/CTInAppNotificationButton.initWithJSON``; type names from ``inapp/CTInAppType``, keys from
``Constants.java``.
"""

from __future__ import annotations

from typing import Any

JAVA_INT_MAX = 2**31 - 1
INBOX_TYPES = {"simple", "message-icon", "carousel", "carousel-image"}
IN_APP_TYPES = {
    "cover",
    "interstitial",
    "half-interstitial",
    "header-template",
    "footer-template",
    "alert-template",
    "cover-image",
    "interstitial-image",
    "half-interstitial-image",
    "custom-code",
}


class JSONException(Exception):
    pass


def get_string(obj: dict[str, Any], key: str) -> str:
    """``JSONObject.getString``: any non-null value, coerced."""
    if key not in obj or obj[key] is None:
        raise JSONException(f"no value for {key}")
    value = obj[key]
    return value if isinstance(value, str) else str(value)


def get_int(obj: dict[str, Any], key: str, *, bits: int = 32) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JSONException(f"{key} is not a number: {value!r}")
    if not -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1):
        raise JSONException(f"{key} does not fit a Java {'int' if bits == 32 else 'long'}: {value}")
    return int(value)


def get_boolean(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise JSONException(f"{key} is not a boolean: {value!r}")
    return value


def get_object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise JSONException(f"{key} is not an object: {value!r}")
    return value


def get_array(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise JSONException(f"{key} is not an array: {value!r}")
    return value


def inbox_message(message: dict[str, Any]) -> dict[str, Any]:
    """``CTMessageDAO.initWithJSON`` then ``CTInboxMessage``: what the inbox shows. Raises JSONException where
    the SDK would drop the message or fail to show it."""
    if "_id" not in message:
        raise JSONException("no _id: CTMessageDAO.initWithJSON returns null and the message is dropped")
    shown: dict[str, Any] = {"id": get_string(message, "_id")}
    shown["date"] = get_int(message, "date") if "date" in message else None
    shown["expires"] = get_int(message, "wzrk_ttl") if "wzrk_ttl" in message else None
    shown["wzrk_id"] = get_string(message, "wzrk_id") if "wzrk_id" in message else "0_0"
    cell = get_object(message, "msg")
    shown["tags"] = [str(t) for t in get_array(cell, "tags")] if "tags" in cell else []
    kind = get_string(cell, "type") if "type" in cell else ""
    if kind not in INBOX_TYPES:
        raise JSONException(f"CTInboxMessageType.fromString({kind!r}) names no template")
    shown["type"] = kind
    shown["bg"] = get_string(cell, "bg") if "bg" in cell else ""
    shown["orientation"] = get_string(cell, "orientation") if "orientation" in cell else ""
    shown["content"] = [_inbox_content(c) for c in get_array(cell, "content")] if "content" in cell else []
    if not shown["content"]:
        raise JSONException("no content: the inbox's view holders read getInboxMessageContents().get(0)")
    return shown


def _inbox_content(content: Any) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise JSONException("a content cell is not an object")
    read: dict[str, Any] = {}
    for part, field in (("title", "text"), ("message", "text")):
        if part in content:
            read[part] = get_string(get_object(content, part), field) if field in content[part] else ""
            if "color" in content[part]:
                get_string(content[part], "color")
    if "icon" in content:
        read["icon"] = get_string(get_object(content, "icon"), "url")
    if "media" in content:
        media = get_object(content, "media")
        read["media"] = get_string(media, "url") if "url" in media else ""
        read["content_type"] = get_string(media, "content_type") if "content_type" in media else ""
    if "action" in content:
        action = get_object(content, "action")
        has_url = "hasUrl" in action and get_boolean(action, "hasUrl")
        if "hasLinks" in action:
            get_boolean(action, "hasLinks")
        if has_url and "url" in action:
            android = get_object(get_object(action, "url"), "android")
            read["action_url"] = get_string(android, "text")
    return read


def in_app(notification: dict[str, Any]) -> dict[str, Any]:
    """``CTInAppNotification.configureWithJson`` (and its buttons): what the in-app shows. Raises JSONException
    where the SDK would record an error and not show it."""
    kind = notification.get("type")
    if kind is None or kind == "custom-html":
        raise JSONException("no type, or custom-html: read as a legacy HTML in-app instead")
    kind = get_string(notification, "type")
    if kind not in IN_APP_TYPES:
        raise JSONException(f"CTInAppType.fromString({kind!r}) names no template")
    shown: dict[str, Any] = {"type": kind}
    shown["id"] = get_string(notification, "ti") if "ti" in notification else ""
    shown["wzrk_id"] = get_string(notification, "wzrk_id") if "wzrk_id" in notification else ""
    shown["exclude_from_caps"] = notification.get("efc", -1) == 1
    for key in ("tlc", "tdc", "mdc"):
        if key in notification:
            get_int(notification, key)
    for key in ("tablet", "hasPortrait", "hasLandscape", "close"):
        if key in notification:
            get_boolean(notification, key)
    shown["bg"] = get_string(notification, "bg") if "bg" in notification else "#FFFFFF"
    shown["ttl"] = get_int(notification, "wzrk_ttl", bits=64) if "wzrk_ttl" in notification else None
    for part in ("title", "message"):
        if part in notification:
            block = get_object(notification, part)
            shown[part] = get_string(block, "text") if "text" in block else ""
    if "media" in notification:
        media = get_object(notification, "media")
        shown["media"] = get_string(media, "url")
        shown["content_type"] = get_string(media, "content_type")
    shown["buttons"] = (
        [_button(b) for b in get_array(notification, "buttons")] if "buttons" in notification else []
    )
    return shown


def _button(button: Any) -> dict[str, Any]:
    if not isinstance(button, dict):
        raise JSONException("a button is not an object")
    read = {"text": get_string(button, "text") if "text" in button else ""}
    for key in ("color", "bg", "border", "radius"):
        if key in button:
            get_string(button, key)
    if "actions" in button:
        actions = get_object(button, "actions")
        read["url"] = get_string(actions, "android") if "android" in actions else ""
        # CTInAppNotificationButton reads actions.getString("type") unconditionally: a button without it is
        # an error, and the SDK leaves the button out.
        read["action"] = get_string(actions, "type")
    return read

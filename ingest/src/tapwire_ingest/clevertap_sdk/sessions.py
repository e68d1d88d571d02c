"""Device ids, sessions and the non-personal session properties of a browser.

The server issues both ids, as CleverTap's does: a device id (the SDK's ``WZRK_G`` cookie, stored under the
profile's ``objectId``) when the browser has none, and a session id (epoch seconds of the session's start) when
the request names no live session. The SDK ends a session itself after 20 minutes without activity (its
``WZRK_S`` cookie expires) and then sends none, so the server keeps whatever live session the browser names.
"""

from __future__ import annotations

import functools
import re
import secrets
from typing import Any, Final

# A browser's session cookie lives 20 minutes after each request; a named session older than this is a replay
# from an old backup queue or made up, and gets a new one.
_MAX_SESSION_AGE_S: Final = 7 * 86_400
_FUTURE_SLACK_S: Final = 3600
_BROWSERS: Final = (
    ("Edge", re.compile(r"\bEdg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"\bOPR/|\bOpera\b")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/")),
    ("Firefox", re.compile(r"\bFirefox/|\bFxiOS/")),
    ("Chrome", re.compile(r"\bChrome/|\bCriOS/|\bHeadlessChrome/")),
    ("Safari", re.compile(r"\bVersion/[\d.]+.*\bSafari/")),
)
_SYSTEMS: Final = (
    ("Android", re.compile(r"\bAndroid\b")),
    ("iOS", re.compile(r"\b(?:iPhone|iPad|iPod)\b")),
    ("Windows", re.compile(r"\bWindows\b")),
    ("Chrome OS", re.compile(r"\bCrOS\b")),
    ("macOS", re.compile(r"\bMac OS X\b|\bMacintosh\b")),
    ("Linux", re.compile(r"\bLinux\b")),
)
_MAX_UA_CHARS: Final = 512
_MAX_TEXT_CHARS: Final = 120


def new_device_id() -> str:
    """A fresh device id: 32 hex digits, as the SDK's own."""
    return secrets.token_hex(16)


def session_for(named: int | None, now_s: int) -> int:
    """The session a request belongs to: the one it names while that is plausible, else a new one."""
    if named is not None and now_s - _MAX_SESSION_AGE_S <= named <= now_s + _FUTURE_SLACK_S:
        return named
    return now_s


@functools.lru_cache(maxsize=4096)
def browser_and_os(user_agent: str) -> tuple[str, str]:
    """Browser and operating system families from a User-Agent header ("Other" when unknown).

    Only the family names are kept (no versions, no device model): enough to segment by, and not enough to
    fingerprint a visitor. Cached: a site's visitors share a few hundred distinct headers.
    """
    text = user_agent[:_MAX_UA_CHARS]
    browser = next((name for name, pattern in _BROWSERS if pattern.search(text)), "Other")
    system = next((name for name, pattern in _SYSTEMS if pattern.search(text)), "Other")
    return browser, system


def session_context(
    payload: dict[str, Any], *, session_id: int, user_agent: str, page_load: bool
) -> dict[str, Any]:
    """The record's ``context``, which CQL reads as session properties: the session, browser and OS on every
    record; on a page load also the referring domain and the campaign (``utm_source`` / ``utm_medium`` /
    ``utm_campaign`` filters read ``campaign.source`` / ``.medium`` / ``.name``)."""
    browser, system = browser_and_os(user_agent)
    context: dict[str, Any] = {"session_id": session_id, "browser": browser, "os": system}
    if page_load:
        context.update(page_referral(payload))
    return context


def page_referral(payload: dict[str, Any], *, deep_link: bool = False) -> dict[str, Any]:
    """Where a page load came from, as session properties: ``referrer`` and ``campaign`` (``utm_source`` /
    ``utm_medium`` / ``utm_campaign`` filters read ``campaign.source`` / ``.medium`` / ``.name``).

    The Web SDK sends the referring domain; a mobile SDK the deep link that opened the app, kept here without
    its query string and fragment (which may carry personal data; the campaign comes separately)."""
    referral: dict[str, Any] = {}
    referrer = _referrer(payload, deep_link=deep_link)
    if referrer:
        referral["referrer"] = referrer
    campaign = {
        name: value[:_MAX_TEXT_CHARS]
        for wire, name in (("us", "source"), ("um", "medium"), ("uc", "name"))
        if type(value := payload.get(wire)) is str and value
    }
    if campaign:
        referral["campaign"] = campaign
    return referral


def _referrer(payload: dict[str, Any], *, deep_link: bool) -> str | None:
    referrer = payload.get("referrer")
    if type(referrer) is not str or not referrer:
        return None
    if deep_link:
        referrer = _without_query(referrer)
    return referrer[:_MAX_TEXT_CHARS]


def _without_query(address: str) -> str:
    return re.split(r"[?#]", address, maxsplit=1)[0]


def page_properties(payload: dict[str, Any], *, session_id: int, user_agent: str) -> dict[str, Any]:
    """A page load's properties: the session and where the visit came from, never the visitor's address.

    The page address is kept without its query string and fragment, which may carry personal data; the
    referrer is the domain the SDK sends (it never sends the full referring URL).
    """
    browser, system = browser_and_os(user_agent)
    properties: dict[str, Any] = {"Session ID": session_id, "Browser": browser, "OS": system}
    page = payload.get("cpg")
    if type(page) is str and page:
        properties["Page"] = _without_query(page)[:512]
    _add_referral(properties, payload, deep_link=False)
    return properties


def screen_properties(item: dict[str, Any], *, session_id: int | None) -> dict[str, Any]:
    """A mobile SDK's page item as ``page_properties`` has a browser's: ``Page`` is the screen's name (``n``,
    set by ``recordScreen``), ``Referrer`` the deep link that opened the app, without its query string; the
    device and app are in the record's context (the queue's header), not repeated here."""
    properties: dict[str, Any] = {} if session_id is None else {"Session ID": session_id}
    screen = item.get("n")
    if type(screen) is str and screen:
        properties["Page"] = screen[:512]
    _add_referral(properties, item, deep_link=True)
    if item.get("install") is True:
        properties["Install"] = True
    return properties


def _add_referral(properties: dict[str, Any], payload: dict[str, Any], *, deep_link: bool) -> None:
    count = payload.get("pg")
    if type(count) is int and count > 0:
        properties["Page Count"] = count
    referrer = _referrer(payload, deep_link=deep_link)
    if referrer:
        properties["Referrer"] = referrer
    for wire, name in (("us", "UTM Source"), ("um", "UTM Medium"), ("uc", "UTM Campaign")):
        value = payload.get(wire)
        if type(value) is str and value:
            properties[name] = value[:_MAX_TEXT_CHARS]

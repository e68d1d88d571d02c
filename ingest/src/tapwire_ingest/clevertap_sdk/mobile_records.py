"""The records of a mobile SDK request (``POST /a1``), as canonical envelopes under the upload API's limits.

The body is a JSON array: a header object (``type: meta``) first, then the queued items, as the Android SDK's
``SendQueueRequestBody.toString`` and ``QueueHeaderBuilder.buildHeader`` and the iOS SDK's ``CleverTap.m`` build
them. The header names the device (``g``), the account (``id``, ``tk``) and the app (``af``: ``Version``,
``OS Version``, ``Make``, ``Model``, …). Each item (``EventQueueManager.processEvent``) has a ``type``:

- ``event``: ``evtName``/``evtData``, the SDK's own ``App Launched`` and notification events included; ``ep`` is
  when it happened (epoch seconds), ``s`` the session;
- ``profile``: ``profile`` with the person's properties; ``Identity``/``Email``/``Phone`` link the device to them,
  ``ct_optout`` is the SDK's opt-out (``setOptOut``);
- ``data``: ``data: {action: register|unregister, id: <token>, type: fcm|apns|…}`` (``PushProviders.
  pushDeviceTokenEvent``, iOS ``pushDeviceToken:forRegisterAction:``): a push token for messaging;
- ``page``: a screen view (``recordScreen``, whose name the item carries as ``n``) or an opened deep link
  (``pushDeepLink``: ``referrer``, the ``us``/``um``/``uc`` campaign, ``install``), stored as the Web SDK's page
  loads are: the event ``Page Viewed`` with the session's properties;
- ``ping``: keeps the session alive, nothing to store (as the Web SDK's).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from tapwire_core.envelope import Envelope, Identities
from tapwire_ingest.clevertap import limits
from tapwire_ingest.clevertap.record_errors import RecordRejected
from tapwire_ingest.clevertap.upload_records import checked_event, checked_token
from tapwire_ingest.clevertap_sdk.sessions import page_referral, screen_properties
from tapwire_ingest.clevertap_sdk.web_records import (
    FETCH_EVENT,
    OPT_OUT_PROPERTY,
    PAGE_EVENT,
    client_ms,
    login_identities,
    profile_data,
)

_MAX_ITEMS: Final = 1000
_APP_FIELDS: Final = (
    ("Version", "app_version"),
    ("OS Version", "os_version"),
    ("Make", "make"),
    ("Model", "model"),
)


@dataclass(slots=True)
class MobileItem:
    """One queued item: its envelope (None when nothing is stored) and what it asks of identity and privacy."""

    envelope: Envelope | None = None
    login: Identities | None = None
    opt_out: bool | None = None


@dataclass(slots=True)
class MobileBatch:
    device_id: str
    items: list[MobileItem] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)


def mobile_batch(
    body: Any, *, account_id: str, platform: str, received_ms: int, device_pattern: Any
) -> MobileBatch:
    """Read the array. Raises ``ValueError`` (the whole request is malformed) with a reason for the client;
    items the limits refuse go to ``refused`` in the upload API's ``unprocessed`` shape."""
    if type(body) is not list or not body or type(body[0]) is not dict or body[0].get("type") != "meta":
        raise ValueError("Body must be a JSON array starting with the SDK's meta header")
    header, items = body[0], body[1:]
    if len(items) > _MAX_ITEMS:
        raise ValueError(f"At most {_MAX_ITEMS} items per request")
    device_id = header.get("g")
    if type(device_id) is not str or not device_pattern.fullmatch(device_id):
        raise ValueError("The header's device id (g) is missing or not one the SDK issues")
    if header.get("id") not in (None, account_id):
        raise ValueError("The header names another account than X-CleverTap-Account-ID")
    context = _app_context(header, platform)
    batch = MobileBatch(device_id)
    seen: Counter[bytes] = Counter()
    for position, item in enumerate(items, start=1):
        try:
            batch.items.append(
                _item(
                    item,
                    account_id=account_id,
                    device_id=device_id,
                    received_ms=received_ms,
                    context=context,
                    seen=seen,
                )
            )
        except RecordRejected as rejected:
            batch.refused.append(
                {
                    "status": "fail",
                    "code": rejected.code,
                    "error": f"{rejected.reason}. Skipped record number : {position}",
                }
            )
    return batch


def _item(
    item: Any,
    *,
    account_id: str,
    device_id: str,
    received_ms: int,
    context: dict[str, Any],
    seen: Counter[bytes],
) -> MobileItem:
    if type(item) is not dict:
        raise RecordRejected(524, "Item is not an object")
    kind = item.get("type")
    session = item.get("s")
    item_context = {**context, "session_id": session} if type(session) is int else context
    ts_ms = client_ms(item.get("ep") if type(item.get("ep")) is int else None, received_ms)
    device = Identities(object_id=device_id)

    def envelope(
        record_kind: Literal["event", "profile", "token"],
        name: str,
        properties: dict[str, Any],
        ids: Identities,
        record_context: dict[str, Any] = item_context,
    ) -> Envelope:
        return Envelope(
            account_id=account_id,
            event_id=_event_id(account_id, device_id, item, seen),
            kind=record_kind,
            ids=ids,
            client_ts=ts_ms,
            received_ts=received_ms,
            source="clevertap",
            name=name,
            properties=properties,
            context=record_context,
        )

    if kind == "event":
        if item.get("evtName") == FETCH_EVENT:
            return MobileItem()
        name, properties = checked_event(item, sdk_raised=True)
        return MobileItem(envelope("event", name, properties, device))
    if kind == "profile":
        raw = item.get("profile")
        choice = raw.get(OPT_OUT_PROPERTY) if type(raw) is dict else None
        profile = profile_data(raw)
        if not profile:
            return MobileItem(opt_out=choice if type(choice) is bool else None)
        ids = login_identities(profile, device_id)
        login = ids if ids.identity or ids.email or ids.phone else None
        return MobileItem(
            envelope("profile", "", profile, ids),
            login=login,
            opt_out=choice if type(choice) is bool else None,
        )
    if kind == "data":
        data = item.get("data")
        if type(data) is not dict or data.get("action") != "register":
            return MobileItem()
        token = checked_token({"id": data.get("id"), "type": data.get("type")})
        return MobileItem(envelope("token", "", token, device))
    if kind == "page":
        properties = screen_properties(item, session_id=session if type(session) is int else None)
        page_context = {**item_context, **page_referral(item, deep_link=True)}
        return MobileItem(envelope("event", PAGE_EVENT, properties, device, page_context))
    if kind == "ping":
        return MobileItem()
    raise RecordRejected(524, "Item type must be event, profile, data, ping or page")


def _app_context(header: dict[str, Any], platform: str) -> dict[str, Any]:
    """The app and device the header describes, kept as every record's context (no advertising ids)."""
    context: dict[str, Any] = {"os": platform}
    fields = header.get("af")
    if type(fields) is dict:
        for wire, name in _APP_FIELDS:
            value = fields.get(wire)
            if type(value) in (str, int, float) and len(str(value)) <= limits.MAX_KEY_CHARS:
                context[name] = value
    return context


def _event_id(account_id: str, device_id: str, item: dict[str, Any], seen: Counter[bytes]) -> str:
    """Stable across the SDK's resends of a batch (the same items, byte for byte); two identical items in
    one batch (same event, same second) stay two."""
    text = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    occurrence = seen[text]
    seen[text] += 1
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{account_id}\x00{device_id}\x00{occurrence}\x00".encode())
    digest.update(text)
    return digest.hexdigest()

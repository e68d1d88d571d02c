"""The records a Web SDK request carries, as canonical envelopes under the upload API's limits.

- ``type=page``: a page load, stored as the event ``Page Viewed`` with the session's properties.
- ``type=push``: ``d.type`` ``event`` (``evtName``/``evtData``, ``Charged`` with ``Items`` included) or
  ``profile`` (``d.profile``: ``Site`` data, the value operators, ``onUserLogin``); the SDK's own
  ``wzrk_fetch`` (a request for campaigns and variables) is answered but not stored.
- ``type=data``: a web push subscription (``endpoint``, ``keys``), stored as a ``chrome`` push token;
  ``action: unregister`` needs nothing stored, since a token registered later by another device id moves to it.
- ``type=ping``: keeps the session alive; nothing to store.

Every record names the browser's device id as its ``objectId``; a profile naming ``Identity``, ``Email`` or
``Phone`` names those too, which is what links the device to the person (see ``logins``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from tapwire_core.envelope import Envelope, Identities
from tapwire_ingest.clevertap import limits
from tapwire_ingest.clevertap.record_errors import RecordRejected
from tapwire_ingest.clevertap.upload_records import checked_event, checked_profile, checked_token
from tapwire_ingest.clevertap_sdk.sessions import page_properties, session_context
from tapwire_ingest.clevertap_sdk.web_request import WebRequest

PAGE_EVENT: Final = "Page Viewed"
FETCH_EVENT: Final = "wzrk_fetch"
OPT_OUT_PROPERTY: Final = "ct_optout"
# Profile keys the SDK adds on its own that are not the person's data.
_SDK_PROFILE_KEYS: Final = frozenset({OPT_OUT_PROPERTY, "ct_allow_sys_events_and_communication"})
_FUTURE_SLACK_MS: Final = 3_600_000


@dataclass(slots=True)
class WebRecords:
    accepted: list[Envelope] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    login: Identities | None = None
    """The identifiers a profile record names besides the device (Identity, Email, Phone), if any."""


def web_records(
    request: WebRequest,
    *,
    account_id: str,
    device_id: str,
    session_id: int,
    received_ms: int,
    user_agent: str,
    client_address: str | None,
) -> WebRecords:
    """The envelopes of ``request``; a record the limits refuse goes to ``refused`` with its reason.

    Every record's ``context`` holds the session's properties (``sessions.session_context``);
    ``client_address`` joins them only when the page allowed it (``useIP``).
    """
    outcome = WebRecords()
    payload = request.payload
    ts_ms = client_ms(request.saved_at_s, received_ms)
    context = session_context(
        payload, session_id=session_id, user_agent=user_agent, page_load=request.type == "page"
    )
    if request.use_ip and client_address:
        context["ip"] = client_address

    def envelope(kind: str, name: str, properties: dict[str, Any], ids: Identities) -> Envelope:
        return Envelope(
            account_id=account_id,
            event_id=_event_id(account_id, device_id, request, kind),
            kind=kind,  # type: ignore[arg-type]  # one of the literals, from the branches below
            ids=ids,
            client_ts=ts_ms,
            received_ts=received_ms,
            source="clevertap",
            name=name,
            properties=properties,
            context=context,
        )

    device = Identities(object_id=device_id)
    try:
        if request.type == "page":
            properties = page_properties(payload, session_id=session_id, user_agent=user_agent)
            outcome.accepted.append(envelope("event", PAGE_EVENT, properties, device))
        elif request.type == "push" and payload.get("type") == "event":
            if payload.get("evtName") != FETCH_EVENT:
                name, properties = checked_event(payload, sdk_raised=True)
                outcome.accepted.append(envelope("event", name, properties, device))
        elif request.type == "push" and payload.get("type") == "profile":
            profile = profile_data(payload.get("profile"))
            if profile:
                ids = login_identities(profile, device_id)
                if ids.identity or ids.email or ids.phone:
                    outcome.login = ids
                outcome.accepted.append(envelope("profile", "", profile, ids))
        elif request.type == "data" and payload.get("action") != "unregister":
            token = _web_push_token(payload)
            if token is not None:
                outcome.accepted.append(envelope("token", "", token, device))
    except RecordRejected as rejected:
        outcome.refused.append(f"{rejected.reason} (code {rejected.code})")
    return outcome


def profile_data(raw: Any) -> dict[str, Any]:
    if type(raw) is not dict:
        raise RecordRejected(512, "profile must be an object")
    data: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SDK_PROFILE_KEYS:
            continue
        # setMultiValuesForKey sends {"$set": [...]}: a plain list value. Multi-values are strings.
        if type(value) is dict and len(value) == 1 and type(value.get("$set")) is list:
            data[key] = [str(v) if type(v) in (int, float) else v for v in value["$set"]]
        else:
            data[key] = value
    return checked_profile(data) if data else data


def login_identities(profile: dict[str, Any], device_id: str) -> Identities:
    identity = profile.get("Identity")
    if type(identity) is int:
        identity = str(identity)
    email, phone = profile.get("Email"), profile.get("Phone")
    if identity is not None and (
        type(identity) is not str
        or not identity.strip()
        or len(identity) >= limits.MAX_IDENTITY_CHARS
        or not identity.isprintable()
    ):
        raise RecordRejected(523, "Identity must be a non-empty string under 120 characters")
    return Identities(
        identity=identity or None,
        object_id=device_id,
        email=email if type(email) is str else None,
        phone=phone if type(phone) is str else None,
    )


def _web_push_token(payload: dict[str, Any]) -> dict[str, Any] | None:
    endpoint, keys = payload.get("endpoint"), payload.get("keys")
    if endpoint is None and keys is None:
        return None
    token: dict[str, Any] = {"id": endpoint, "type": "chrome", "keys": keys}
    browser = payload.get("browser")
    if type(browser) is str and browser:
        token["browser"] = browser[:32]
    return checked_token(token)


def client_ms(saved_at_s: int | None, received_ms: int) -> int:
    """When the SDK saved the request (``i``): requests wait in its queue while the browser is offline. A
    value in the future or past the upload API's range falls back to when it arrived."""
    if saved_at_s is None or saved_at_s > limits.MAX_TS_SECONDS:
        return received_ms
    ts_ms = saved_at_s * 1000
    return received_ms if ts_ms > received_ms + _FUTURE_SLACK_MS else ts_ms


def _event_id(account_id: str, device_id: str, request: WebRequest, kind: str) -> str:
    """Stable across the SDK's retries of one request (same payload, save time, sequence and request number),
    so a retried request is stored once; distinct for every other request of the device."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(
        f"{account_id}\x00{device_id}\x00{kind}\x00{request.type}\x00{request.saved_at_s}\x00"
        f"{request.sequence}\x00{request.request_number}\x00".encode()
    )
    digest.update(request.raw_payload.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()

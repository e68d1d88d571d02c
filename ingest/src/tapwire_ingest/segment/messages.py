"""Segment messages (track, identify, page, screen, group, alias) to canonical envelopes and identity links.

Hand-written over orjson's dicts like the CleverTap path: one pass per message, rejecting it with a Segment-style
code as soon as a check fails, so one bad message never costs its neighbours their place.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from tapwire_core.envelope import Envelope, Identities, RecordKind
from tapwire_core.identity.keys import keys_of
from tapwire_ingest.identity_links import PREVIOUS_ID_PREFIX, Link
from tapwire_ingest.segment import limits
from tapwire_ingest.segment.timestamps import MAX_MS, MIN_MS, corrected_ms, parse_ms

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")


class MessageRejected(Exception):
    """One message is invalid: it is dead-lettered and its neighbours are still stored."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rejection:
    position: int
    code: str
    reason: str
    message: Any


@dataclass(slots=True)
class BatchOutcome:
    envelopes: list[Envelope] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What every message of one request shares."""

    account_id: str
    key_scope: bytes
    received_ms: int
    request_digest: bytes
    max_event_bytes: int
    client_ip: str | None = None
    wrapper_sent_at: Any = None
    wrapper_context: dict[str, Any] | None = None
    wrapper_integrations: dict[str, Any] | None = None


def batch_context(
    payload: dict[str, Any],
    *,
    account_id: str,
    key_scope: bytes,
    received_ms: int,
    request_digest: bytes,
    max_event_bytes: int,
    client_ip: str | None = None,
) -> BatchContext:
    context = payload.get("context")
    integrations = payload.get("integrations")
    return BatchContext(
        account_id=account_id,
        key_scope=key_scope,
        received_ms=received_ms,
        request_digest=request_digest,
        max_event_bytes=max_event_bytes,
        client_ip=client_ip,
        wrapper_sent_at=payload.get("sentAt"),
        wrapper_context=context if type(context) is dict and context else None,
        wrapper_integrations=integrations if type(integrations) is dict and integrations else None,
    )


def map_messages(
    messages: list[Any], batch: BatchContext, *, implied_type: str | None = None, max_events: int
) -> BatchOutcome:
    """Map each message; messages past ``max_events`` are rejected (as Segment does past 2,500)."""
    outcome = BatchOutcome()
    for position, message in enumerate(messages):
        try:
            if position >= max_events:
                raise MessageRejected("too_many_events", f"A batch may hold at most {max_events} messages")
            envelopes, link = map_message(message, batch, position=position, implied_type=implied_type)
        except MessageRejected as rejected:
            outcome.rejected.append(Rejection(position, rejected.code, rejected.reason, message))
            continue
        outcome.envelopes.extend(envelopes)
        if link is not None:
            outcome.links.append(link)
    return outcome


def map_message(
    message: Any, batch: BatchContext, *, position: int, implied_type: str | None = None
) -> tuple[list[Envelope], Link | None]:
    """One message to its envelopes and the identity link it asserts. Raises MessageRejected."""
    kind = _message_kind(message, batch, implied_type)
    user_id = _optional_id(message, "userId")
    anonymous_id = _optional_id(message, "anonymousId")
    if kind == "alias":
        return [], _alias(message, user_id)
    if user_id is None and anonymous_id is None:
        raise MessageRejected("no_user_anon_id", "Message has neither userId nor anonymousId")
    context = _request_context(message, batch)
    integrations = _merged_object(batch.wrapper_integrations, message.get("integrations"), "integrations")
    message_id = _optional_id(message, "messageId")
    stamp = _Stamp(
        batch,
        event_id=_event_id(batch, message_id, position),
        ts_ms=_timestamp(message, batch),
        context=_stored_context(
            message,
            kind=kind,
            context=context,
            integrations=integrations,
            message_id=message_id,
            batch=batch,
        ),
    )
    envelopes, ids = _MAPPERS[kind](
        message, context, Identities(identity=user_id, anonymous_id=anonymous_id), stamp
    )
    keys = keys_of(ids)
    link = Link(tuple(keys), explicit=False, reason=kind) if len(keys) > 1 else None
    return envelopes, link


def _message_kind(message: Any, batch: BatchContext, implied_type: str | None) -> str:
    """The message's type (the endpoint's, for ``/v1/track`` and the like), once it is a JSON object of an
    admitted size. Raises MessageRejected."""
    if type(message) is not dict:
        raise MessageRejected("invalid_message", "A message must be a JSON object")
    _check_size(message, batch.max_event_bytes)
    kind = implied_type or message.get("type")
    if kind not in limits.MESSAGE_TYPES:
        raise MessageRejected(
            "invalid_type", f"type must be one of {', '.join(sorted(limits.MESSAGE_TYPES))}"
        )
    return str(kind)


def _request_context(message: dict[str, Any], batch: BatchContext) -> dict[str, Any]:
    context = _merged_object(batch.wrapper_context, message.get("context"), "context")
    if context.get("direct") is True and "ip" not in context and batch.client_ip:
        # A client without a server in front asks for the caller's address to be recorded.
        context = context | {"ip": batch.client_ip}
    return context


@dataclass(frozen=True, slots=True)
class _Stamp:
    """What every envelope of one message shares: account, event id, times and the context stored with it."""

    batch: BatchContext
    event_id: str
    ts_ms: int
    context: dict[str, Any]

    def envelope(
        self, kind: RecordKind, name: str, properties: dict[str, Any], who: Identities, *, id_suffix: str = ""
    ) -> Envelope:
        return Envelope(
            account_id=self.batch.account_id,
            event_id=self.event_id + id_suffix,
            kind=kind,
            ids=who,
            client_ts=self.ts_ms,
            received_ts=self.batch.received_ms,
            source="segment",
            name=name,
            properties=properties,
            context=self.context,
        )


# Each maps one message of its type to envelopes, and says which identities the message links.
_Mapper = Callable[[dict[str, Any], dict[str, Any], Identities, _Stamp], tuple[list[Envelope], Identities]]


def _track(
    message: dict[str, Any], _context: dict[str, Any], ids: Identities, stamp: _Stamp
) -> tuple[list[Envelope], Identities]:
    name = message.get("event")
    if type(name) is not str or not name.strip():
        raise MessageRejected("missing_event", "A track call needs an event name")
    if len(name) > limits.MAX_EVENT_NAME_CHARS:
        raise MessageRejected(
            "invalid_event", f"Event names are at most {limits.MAX_EVENT_NAME_CHARS} characters"
        )
    return [stamp.envelope("event", name, _properties(message), ids)], ids


def _view(event_name: str) -> _Mapper:
    """Page and screen calls: an event of that name, with the call's ``name`` and ``category`` as properties
    unless the properties carry their own."""

    def view(
        message: dict[str, Any], _context: dict[str, Any], ids: Identities, stamp: _Stamp
    ) -> tuple[list[Envelope], Identities]:
        properties = dict(_properties(message))
        for key in ("name", "category"):
            value = message.get(key)
            if value is not None:
                properties.setdefault(key, value)
        return [stamp.envelope("event", event_name, properties, ids)], ids

    return view


def _identify(
    message: dict[str, Any], context: dict[str, Any], ids: Identities, stamp: _Stamp
) -> tuple[list[Envelope], Identities]:
    traits = message.get("traits")
    if type(traits) is not dict:
        traits = context.get("traits") if context else None
    profile = profile_properties(traits if type(traits) is dict else {})
    ids = _with_contact(ids, profile)
    return [stamp.envelope("profile", "", profile, ids)], ids


def _group(
    message: dict[str, Any], _context: dict[str, Any], ids: Identities, stamp: _Stamp
) -> tuple[list[Envelope], Identities]:
    group_id = _optional_id(message, "groupId")
    if group_id is None:
        raise MessageRejected("missing_group_id", "A group call needs a groupId")
    traits = message.get("traits")
    group_traits = profile_properties(traits if type(traits) is dict else {})
    envelopes = [
        stamp.envelope("profile", "", group_traits, Identities(group_id=group_id), id_suffix=":group"),
        stamp.envelope("profile", "", {limits.GROUPS_TRAIT: {"$add": [group_id]}}, ids),
    ]
    return envelopes, ids


_MAPPERS: Final[dict[str, _Mapper]] = {
    "track": _track,
    "page": _view(limits.PAGE_EVENT),
    "screen": _view(limits.SCREEN_EVENT),
    "identify": _identify,
    "group": _group,
}


def profile_properties(traits: dict[str, Any]) -> dict[str, Any]:
    """Segment traits as profile properties: nested objects flattened to dotted keys, ``name``/``email``/
    ``phone`` under CleverTap's reserved names. Objects deeper than the flattening limit are stored as JSON
    text, so no client value is ever read as one of CleverTap's ``{"$add": …}`` operators."""
    out: dict[str, Any] = {}

    def put(key: str, value: Any, depth: int) -> None:
        if type(value) is dict:
            if depth >= limits.MAX_TRAIT_DEPTH:
                out[key] = orjson.dumps(value).decode()
                return
            for inner_key, inner in value.items():
                put(f"{key}.{inner_key}", inner, depth + 1)
            return
        if type(value) is float and not math.isfinite(value):
            return
        out[key] = value

    for key, value in traits.items():
        put(limits.RESERVED_TRAITS.get(key, key), value, 1)
    return out


def _check_size(message: dict[str, Any], max_bytes: int) -> None:
    try:
        size = len(orjson.dumps(message))
    except TypeError as exc:  # nested past the encoder's depth limit
        raise MessageRejected("invalid_message", "Message is nested too deeply") from exc
    if size > max_bytes:
        raise MessageRejected("event_too_large", f"Message is {size} bytes; the limit is {max_bytes}")


def _optional_id(message: dict[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is None:
        return None
    # Hand-written clients send numeric ids; Segment's own tooling coerces them to strings.
    if type(value) is int:
        text = str(value)
    elif type(value) is float and value.is_integer():
        text = str(int(value))
    elif type(value) is str:
        text = value
    else:
        raise MessageRejected("invalid_id", f"{key} must be a string")
    if not text.strip():
        return None
    if len(text) > limits.MAX_ID_CHARS or not text.isprintable():
        raise MessageRejected(
            "invalid_id", f"{key} must be printable and at most {limits.MAX_ID_CHARS} characters"
        )
    return text


def _alias(message: dict[str, Any], user_id: str | None) -> Link:
    previous = _optional_id(message, "previousId")
    if user_id is None or previous is None:
        raise MessageRejected("missing_alias_ids", "An alias call needs userId and previousId")
    return Link(("i:" + user_id, PREVIOUS_ID_PREFIX + previous), explicit=True, reason="alias")


def _merged_object(wrapper: dict[str, Any] | None, own: Any, key: str) -> dict[str, Any]:
    if own is not None and type(own) is not dict:
        raise MessageRejected("invalid_field", f"{key} must be an object")
    if wrapper is None:
        return own or {}
    return {**wrapper, **own} if own else dict(wrapper)


def _properties(message: dict[str, Any]) -> dict[str, Any]:
    properties = message.get("properties")
    if properties is None:
        return {}
    if type(properties) is not dict:
        raise MessageRejected("invalid_field", "properties must be an object")
    return properties


def _timestamp(message: dict[str, Any], batch: BatchContext) -> int:
    original = parse_ms(message.get("timestamp"))
    sent = parse_ms(message.get("sentAt"))
    if sent is None:
        sent = parse_ms(batch.wrapper_sent_at)
    ts_ms = corrected_ms(original_ms=original, sent_ms=sent, received_ms=batch.received_ms)
    if not MIN_MS <= ts_ms <= MAX_MS:
        raise MessageRejected("invalid_timestamp", "timestamp is outside 1900-2299")
    return ts_ms


def _stored_context(
    message: dict[str, Any],
    *,
    kind: str,
    context: dict[str, Any],
    integrations: dict[str, Any],
    message_id: str | None,
    batch: BatchContext,
) -> dict[str, Any]:
    stored: dict[str, Any] = {"type": kind, "context": context, "integrations": integrations}
    if message_id is not None:
        stored["messageId"] = message_id
    for key in ("timestamp", "sentAt", "channel", "version"):
        value = message.get(key)
        if value is not None:
            stored["originalTimestamp" if key == "timestamp" else key] = value
    if "sentAt" not in stored and batch.wrapper_sent_at is not None:
        stored["sentAt"] = batch.wrapper_sent_at
    return stored


def _with_contact(ids: Identities, profile: dict[str, Any]) -> Identities:
    email, phone = profile.get("Email"), profile.get("Phone")
    valid_email = email if type(email) is str and _EMAIL.match(email) else None
    valid_phone = phone if type(phone) is str and _PHONE.match(phone) else None
    if valid_email is None and valid_phone is None:
        return ids
    return Identities(
        identity=ids.identity, anonymous_id=ids.anonymous_id, email=valid_email, phone=valid_phone
    )


def _event_id(batch: BatchContext, message_id: str | None, position: int) -> str:
    """``messageId`` scoped to the write key that sent it, so a retry of the same message deduplicates.

    Without a messageId the id comes from the request body and the position, like the CleverTap path: the same
    request retried yields the same ids.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(batch.key_scope)
    digest.update(b"\x00")
    if message_id is not None:
        digest.update(b"m")
        digest.update(message_id.encode())
    else:
        digest.update(b"r")
        digest.update(batch.request_digest)
        digest.update(position.to_bytes(4, "big"))
    return digest.hexdigest()

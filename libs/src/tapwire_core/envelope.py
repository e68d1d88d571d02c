"""The canonical event envelope: one shape for every input path (CleverTap, Segment) on the bus.

``msgspec`` structs rather than pydantic models: the envelope is encoded and decoded once per event on the
gateway and loader hot paths, where msgspec is several times faster (see docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec

RecordKind = Literal["event", "profile", "token", "alias"]
Source = Literal["clevertap", "segment", "internal"]


class Identities(msgspec.Struct, omit_defaults=True, frozen=True, gc=False):
    """Every identifier a record names its user by. At least one is set.

    Not tracked by the garbage collector (``gc=False``): it holds only strings, so it can be in no reference
    cycle, and the loader holds hundreds of thousands of them at a time.
    """

    identity: str | None = None
    object_id: str | None = None
    fbid: str | None = None
    gpid: str | None = None
    email: str | None = None
    phone: str | None = None
    anonymous_id: str | None = None
    # A Segment group (a company, an organisation): set alone, on the group's own trait records.
    group_id: str | None = None

    def user_key(self) -> str:
        """The stable per-account user key: the strongest identifier present, prefixed by its kind.

        Identity resolution (merges) maps several keys to one person later; this key only fixes which
        warehouse shard and bus partition a record belongs to, so it must never change for a record.
        ``USER_KEY_ORDER`` states the same rule as data (the loader's SQL is built from it); this method is
        spelled out because it runs once per record.
        """
        if self.identity:
            return "i:" + self.identity
        if self.object_id:
            return "o:" + self.object_id
        if self.fbid:
            return "f:" + self.fbid
        if self.gpid:
            return "g:" + self.gpid
        if self.anonymous_id:
            return "a:" + self.anonymous_id
        if self.email:
            return "e:" + self.email
        if self.phone:
            return "p:" + self.phone
        if self.group_id:
            return "grp:" + self.group_id
        return ""


# ``Identities.user_key`` as data: the first non-empty field in this order names the user, behind its prefix.
USER_KEY_ORDER: Final[tuple[tuple[str, str], ...]] = (
    ("identity", "i:"),
    ("object_id", "o:"),
    ("fbid", "f:"),
    ("gpid", "g:"),
    ("anonymous_id", "a:"),
    ("email", "e:"),
    ("phone", "p:"),
    ("group_id", "grp:"),
)


# How CleverTap names users in a send's ``to`` (and a campaign's explicit audience) → the user key prefix.
IDENTITY_KIND_PREFIXES: Final[Mapping[str, str]] = {
    "Identity": "i:",
    "identity": "i:",
    "objectId": "o:",
    "FBID": "f:",
    "GPID": "g:",
    "Email": "e:",
    "email": "e:",
    "Phone": "p:",
}


class _EnvelopeHead(msgspec.Struct, omit_defaults=True, frozen=True):
    """Fields every view of an envelope shares."""

    account_id: str
    event_id: str
    kind: RecordKind
    ids: Identities
    client_ts: int
    received_ts: int
    source: Source
    name: str = ""


class Envelope(_EnvelopeHead, frozen=True):
    """One accepted record, as the gateway publishes it and the loader stores it.

    ``client_ts`` and ``received_ts`` are epoch milliseconds. ``properties`` holds ``evtData`` for events,
    ``profileData`` for profiles, ``tokenData`` for tokens and one ``user_aliases`` row (the identity graph's
    projection, see ``tapwire_core.identity``) for aliases.
    """

    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    context: dict[str, Any] | None = None

    def partition_key(self) -> bytes:
        """Bus key: account + user, so one user's records stay in order on one partition."""
        return f"{self.account_id}\x1f{self.ids.user_key()}".encode()


_EMPTY_OBJECT: Final = msgspec.Raw(b"{}")
_NO_CONTEXT: Final = msgspec.Raw(b"")


class StoredEnvelope(_EnvelopeHead, frozen=True, gc=False):
    """The loader's view of an envelope: ``properties`` and ``context`` stay raw JSON.

    Events store their properties as JSON text, so parsing them only to serialise them again would be the
    loader's largest per-record cost; profiles parse theirs on demand with :func:`decode_properties`.

    Not tracked by the garbage collector (``gc=False``): its fields are strings, integers, raw JSON and an
    ``Identities``, so it can be in no reference cycle. The loader holds every envelope of a batch until the
    batch is written; tracked, they made each of the collector's full passes walk the whole batch, which cost
    about as much CPU as decoding them.
    """

    # Shared immutable defaults: a factory would run once per decoded envelope that lacks the field.
    properties: msgspec.Raw = _EMPTY_OBJECT
    # msgspec cannot decode Raw inside an Optional, so "no context" is an empty Raw rather than None.
    context: msgspec.Raw = _NO_CONTEXT


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)
_stored_decoder = msgspec.json.Decoder(StoredEnvelope)
_properties_decoder = msgspec.json.Decoder(dict[str, Any])


def encode(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode(payload: bytes) -> Envelope:
    """Decode a bus payload. Raises ``msgspec.ValidationError``/``DecodeError`` on a malformed one."""
    return _decoder.decode(payload)


def decode_stored(payload: bytes) -> StoredEnvelope:
    """Decode a bus payload for storage, leaving properties unparsed. Raises like :func:`decode`."""
    return _stored_decoder.decode(payload)


def decode_properties(raw: msgspec.Raw) -> dict[str, Any]:
    return _properties_decoder.decode(raw)

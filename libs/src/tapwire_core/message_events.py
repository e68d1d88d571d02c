"""What happened to a message, as the canonical system event every service publishes it with.

Messaging publishes most of these (``tapwire_messaging.feedback``); the gateway publishes ``Notification
Delivered`` when a user's SDK takes an in-app or inbox message. Both build them here, so one message's event
has one id wherever it comes from: the id is derived from (campaign, variant, user, channel, event name) and an
optional occurrence, so a republish is stored once (the events table deduplicates on event id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

from tapwire_core.envelope import Envelope, Identities

_PREFIX_FIELDS: Final = {
    "i:": "identity",
    "o:": "object_id",
    "f:": "fbid",
    "g:": "gpid",
    "a:": "anonymous_id",
    "e:": "email",
    "p:": "phone",
}


def identities_for(user_key: str) -> Identities:
    """The identities whose ``user_key()`` is ``user_key`` (the inverse of Identities.user_key)."""
    field = _PREFIX_FIELDS.get(user_key[:2])
    if field is None:
        return Identities(anonymous_id=user_key)
    return Identities(**{field: user_key[2:]})


def message_event(
    *,
    account_id: str,
    user_key: str,
    name: str,
    campaign_id: int,
    variant: str,
    channel: str,
    ts_ms: int,
    extra: Mapping[str, Any] | None = None,
    occurrence: str = "",
) -> Envelope:
    """The event ``name`` about the user's message of (campaign, variant, channel); properties ``campaign_id``,
    ``variant``, ``channel`` and ``extra``. ``occurrence`` tells apart events that may happen more than once
    per message (a click each minute); empty: once."""
    identity = f"{campaign_id}\x1f{variant}\x1f{user_key}\x1f{channel}\x1f{name}"
    if occurrence:
        identity += f"\x1f{occurrence}"
    properties: dict[str, Any] = {
        "campaign_id": campaign_id,
        "variant": variant,
        "channel": channel,
        **(extra or {}),
    }
    return Envelope(
        account_id=account_id,
        event_id=hashlib.blake2b(identity.encode(), digest_size=16).hexdigest(),
        kind="event",
        ids=identities_for(user_key),
        client_ts=ts_ms,
        received_ts=ts_ms,
        source="internal",
        name=name,
        properties=properties,
    )

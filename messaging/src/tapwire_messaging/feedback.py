"""What happened to messages, published on the bus as canonical system events.

Event ids are derived from (campaign, variant, user, channel, event name), and for clicks the link and the
minute, so a republish after a crash is stored once (the events table deduplicates on event id).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from tapwire_core.bus import Bus, BusUnavailable, Record
from tapwire_core.envelope import Envelope, Identities, encode

log = logging.getLogger(__name__)

FeedbackName = Literal[
    "Notification Sent",
    "Notification Failed",
    "Notification Viewed",
    "Notification Clicked",
    "Channel Unsubscribed",
    "Notification Delivered",
    "Notification Bounced",
    "Notification Complained",
]

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


@dataclass(frozen=True, slots=True)
class Feedback:
    account_id: str
    user_key: str
    name: FeedbackName
    campaign_id: int
    variant: str
    channel: str
    ts_ms: int
    extra: dict[str, Any] | None = None
    occurrence: str = ""
    """Tells apart events that may happen more than once per message (a click each minute); empty: once."""

    def envelope(self) -> Envelope:
        identity = f"{self.campaign_id}\x1f{self.variant}\x1f{self.user_key}\x1f{self.channel}\x1f{self.name}"
        if self.occurrence:
            identity += f"\x1f{self.occurrence}"
        event_id = hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()
        properties: dict[str, Any] = {
            "campaign_id": self.campaign_id,
            "variant": self.variant,
            "channel": self.channel,
            **(self.extra or {}),
        }
        return Envelope(
            account_id=self.account_id,
            event_id=event_id,
            kind="event",
            ids=identities_for(self.user_key),
            client_ts=self.ts_ms,
            received_ts=self.ts_ms,
            source="internal",
            name=self.name,
            properties=properties,
        )


class FeedbackPublisher:
    """Publishes feedback events; with no bus (a process without one) it only counts them."""

    def __init__(self, bus: Bus | None, topic: str, *, timeout_s: float = 5.0, attempts: int = 3) -> None:
        self.bus = bus
        self.topic = topic
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.published = 0

    async def publish(self, items: Sequence[Feedback]) -> bool:
        """True once durable on the bus. After ``attempts`` failures logs and returns False: feedback must not
        hold up delivery, and the outbox keeps the authoritative record for reports."""
        if not items:
            return True
        if self.bus is None:
            return False
        records = []
        for item in items:
            envelope = item.envelope()
            records.append(Record(key=envelope.partition_key(), value=encode(envelope)))
        for attempt in range(self.attempts):
            try:
                await self.bus.publish(self.topic, records, timeout_s=self.timeout_s)
            except BusUnavailable as exc:
                log.warning("feedback publish failed", extra={"attempt": attempt + 1, "error": str(exc)})
                continue
            self.published += len(records)
            return True
        log.error("feedback events dropped after retries", extra={"count": len(records)})
        return False

"""What happened to messages, published on the bus as canonical system events.

Event ids are derived from (campaign, variant, user, channel, event name), and for clicks the link and the
minute, so a republish after a crash is stored once (the events table deduplicates on event id).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tapwire_core.bus import Bus, BusUnavailable, Record
from tapwire_core.envelope import Envelope, encode
from tapwire_core.message_events import message_event

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
        return message_event(
            account_id=self.account_id,
            user_key=self.user_key,
            name=self.name,
            campaign_id=self.campaign_id,
            variant=self.variant,
            channel=self.channel,
            ts_ms=self.ts_ms,
            extra=self.extra,
            occurrence=self.occurrence,
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

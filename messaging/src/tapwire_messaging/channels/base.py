"""What every provider adapter takes and answers.

An adapter never raises for a provider's answer: it returns a :class:`SendResult` saying whether the message was
accepted, may be retried later, was refused for good, or went to an address the provider no longer knows.
Programming errors (a message missing what the adapter needs) do raise ``ValueError``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tapwire_messaging.email_feedback.classify import Bounce

ChannelName = Literal["email", "push", "sms", "webhook", "inapp", "inbox"]
CHANNELS: tuple[ChannelName, ...] = ("email", "push", "sms", "webhook", "inapp", "inbox")
SDK_CHANNELS: frozenset[str] = frozenset({"inapp", "inbox"})
"""Channels whose messages wait for the user's CleverTap SDK to fetch them (``channels.sdk_messages``)."""

# sent: the provider accepted it. failed: transient (timeout, 5xx, 4xx SMTP), the outbox retries later.
# rejected: refused for good (4xx HTTP, 5xx SMTP). unregistered: the address or token is gone; stop using it.
SendOutcome = Literal["sent", "failed", "rejected", "unregistered"]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One rendered message for one recipient.

    ``idempotency_key`` is derived from the outbox key (campaign, variant, user, channel); adapters pass it to
    providers that accept one (Message-ID for SMTP, ``Idempotency-Key`` for webhooks, ``apns-id`` for APNs).
    ``to`` is an email address, a phone number, a push token or a webhook URL. ``platform`` names the push
    token's kind (``fcm`` or ``apns``). ``data`` is the provider payload's free part (push data, webhook JSON).
    ``feedback_token`` (email) names the message in bounce and complaint reports: the Message-ID carries it,
    and ``return_path``, when set, is the envelope sender (a VERP address carrying it too).
    """

    idempotency_key: str
    to: str
    body: str
    subject: str | None = None
    title: str | None = None
    html: str | None = None
    platform: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    secret: str | None = None
    feedback_token: str | None = None
    return_path: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """``retry_after_s``: for ``failed``, the provider asked not to be called again before this many seconds
    (``Retry-After``); the outbox waits at least that long before the next attempt. ``bounce`` (email): what
    the refusal says about the recipient's address; a hard bounce comes as ``unregistered``."""

    outcome: SendOutcome
    detail: str = ""
    provider_id: str | None = None
    retry_after_s: float | None = None
    bounce: Bounce | None = None

    @property
    def retryable(self) -> bool:
        return self.outcome == "failed"


class ChannelAdapter(abc.ABC):
    """A connection to one provider. Safe to share between tasks once started."""

    name: str

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Open connections or pools. Idempotent."""

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult:
        """Deliver ``message``; the result says what the provider answered. Never raises for provider errors."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; further sends are an error."""

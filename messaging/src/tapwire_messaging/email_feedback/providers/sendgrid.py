"""SendGrid's Event Webhook: ECDSA-signed batches of events, read into notices.

SendGrid signs ``timestamp + body`` with ECDSA P-256 / SHA-256 and sends the base64 DER signature and the
timestamp in ``X-Twilio-Email-Event-Webhook-Signature`` and ``…-Timestamp``; the verification key is the
public key shown when signing is turned on (base64 DER, ``TAPWIRE_SENDGRID_WEBHOOK_PUBLIC_KEY``).

Events read: ``bounce`` (``type: blocked`` is a block; otherwise judged by its status, a hard bounce without
one), ``dropped`` for a previously bounced, invalid or complaining address, ``spamreport`` (a complaint) and
``delivered``. The message is found by the ``tapwire`` unique argument (``X-SMTPAPI``) or the ``smtp-id``,
which is the Message-ID tapwire set.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tapwire_messaging.email_feedback.classify import classify_status, enhanced_status
from tapwire_messaging.email_feedback.notices import Notice, NoticeKind, notice_id, scrubbed
from tapwire_messaging.email_feedback.providers.errors import WebhookRefused
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens

SIGNATURE_HEADER: Final = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER: Final = "x-twilio-email-event-webhook-timestamp"
MAX_AGE_S: Final = 24 * 3600
_MAX_EVENTS: Final = 10_000
_DROPPED: Final[dict[str, tuple[NoticeKind, str]]] = {
    "bounced address": ("hard_bounce", "previously-bounced"),
    "invalid": ("hard_bounce", "bad-address-syntax"),
    "spam reporting address": ("complaint", "previously-complained"),
}


class SendgridVerifier:
    def __init__(self, public_key: str, *, now: Callable[[], float] = time.time) -> None:
        """``public_key``: base64 DER (SubjectPublicKeyInfo) of the webhook's P-256 key; ValueError if not."""
        try:
            key = serialization.load_der_public_key(base64.b64decode(public_key, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("TAPWIRE_SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("TAPWIRE_SENDGRID_WEBHOOK_PUBLIC_KEY is not an elliptic-curve key")
        self._key = key
        self._now = now

    def check_headers(self, headers: Mapping[str, str]) -> tuple[bytes, str]:
        """The signature and timestamp, checked for shape and age before the body is read."""
        signature, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise WebhookRefused(401, "signature-missing", "the SendGrid signature headers are missing")
        try:
            decoded = base64.b64decode(signature, validate=True)
            age = self._now() - int(timestamp)
        except (binascii.Error, ValueError) as exc:
            raise WebhookRefused(401, "signature-malformed", "the SendGrid signature is malformed") from exc
        if age > MAX_AGE_S or age < -300:
            raise WebhookRefused(401, "stale", "the SendGrid timestamp is too old or in the future")
        return decoded, timestamp

    def verify(self, signature: bytes, timestamp: str, body: bytes) -> None:
        try:
            self._key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise WebhookRefused(401, "signature", "the SendGrid signature does not match") from exc


def sendgrid_notices(events: Any, *, tokens: ReturnPathTokens) -> list[Notice]:
    if not isinstance(events, list):
        return []
    notices = []
    for event in events[:_MAX_EVENTS]:
        if isinstance(event, dict):
            notice = _notice(event, tokens)
            if notice is not None:
                notices.append(notice)
    return notices


def _notice(event: Mapping[str, Any], tokens: ReturnPathTokens) -> Notice | None:
    name, address = event.get("event"), event.get("email")
    if not isinstance(address, str) or not isinstance(name, str):
        return None
    row_id = tokens.first_row_id([_text(event.get("tapwire")), _text(event.get("smtp-id"))])
    event_id = notice_id("sendgrid", event.get("sg_event_id") or (event.get("sg_message_id"), name, address))
    ts_ms = event["timestamp"] * 1000 if isinstance(event.get("timestamp"), int) else None
    reason = _text(event.get("reason"))
    if name == "delivered":
        return Notice("delivered", "sendgrid", event_id, row_id, address, "delivered", ts_ms=ts_ms)
    if name == "spamreport":
        return Notice("complaint", "sendgrid", event_id, row_id, address, "abuse", ts_ms=ts_ms)
    if name == "bounce":
        status = enhanced_status(str(event.get("status", "")))
        if event.get("type") == "blocked":
            return Notice(
                "block",
                "sendgrid",
                event_id,
                row_id,
                address,
                "blocked",
                status,
                scrubbed(reason, address),
                ts_ms,
            )
        bounce = classify_status(status) if status is not None and status[0] in "45" else None
        kind: NoticeKind = bounce.kind if bounce is not None else "hard_bounce"
        category = bounce.category if bounce is not None else "bounce"
        return Notice(
            kind, "sendgrid", event_id, row_id, address, category, status, scrubbed(reason, address), ts_ms
        )
    if name == "dropped":
        mapped = _DROPPED.get((reason or "").strip().lower())
        if mapped is None:
            return None
        return Notice(mapped[0], "sendgrid", event_id, row_id, address, mapped[1], ts_ms=ts_ms)
    return None


def _text(value: Any) -> str | None:
    return value[:1000] if isinstance(value, str) else None

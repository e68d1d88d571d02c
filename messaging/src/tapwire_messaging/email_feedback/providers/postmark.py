"""Postmark's bounce, spam complaint and delivery webhooks, authenticated by a shared secret.

Postmark signs nothing: the webhook URL carries HTTP basic credentials (``https://postmark:<secret>@…``) or
the webhook sends a custom ``Authorization: Bearer <secret>`` header. Either is checked, in constant time,
before the body is read. The message is found by the ``tapwire`` metadata field (``X-PM-Metadata-tapwire``).

Bounce types: ``HardBounce``, ``BadEmailAddress`` and ``ManuallyDeactivated`` are hard bounces;
``SoftBounce``, ``Transient``, ``DnsError`` and ``Unknown`` soft ones; ``Blocked``, ``SpamNotification``,
``VirusNotification``, ``DMARCPolicy`` and ``ContentRelated`` blocks; ``SpamComplaint`` a complaint; the
rest (auto-responders, challenge verifications, subscription changes) are not reported on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime
from typing import Any, Final

from tapwire_messaging.email_feedback.notices import Notice, NoticeKind, notice_id, scrubbed
from tapwire_messaging.email_feedback.providers.errors import WebhookRefused
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens

_BOUNCE_KINDS: Final[dict[str, NoticeKind]] = {
    "HardBounce": "hard_bounce",
    "BadEmailAddress": "hard_bounce",
    "ManuallyDeactivated": "hard_bounce",
    "SoftBounce": "soft_bounce",
    "Transient": "soft_bounce",
    "DnsError": "soft_bounce",
    "Unknown": "soft_bounce",
    "Blocked": "block",
    "SpamNotification": "block",
    "VirusNotification": "block",
    "DMARCPolicy": "block",
    "ContentRelated": "block",
    "SpamComplaint": "complaint",
}


def check_postmark_auth(authorization: str | None, secret: str) -> None:
    """Basic credentials whose password is ``secret``, or ``Bearer <secret>``; WebhookRefused(401) else."""
    presented = ""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        presented = value.strip()
    elif scheme.lower() == "basic":
        try:
            presented = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            presented = ""
    if not presented or not hmac.compare_digest(presented.encode(), secret.encode()):
        raise WebhookRefused(401, "credentials", "the Postmark webhook credentials are missing or wrong")


def postmark_notices(payload: Any, *, tokens: ReturnPathTokens) -> list[Notice]:
    if not isinstance(payload, dict):
        return []
    record_type = payload.get("RecordType")
    metadata = payload["Metadata"] if isinstance(payload.get("Metadata"), dict) else {}
    row_id = tokens.first_row_id([_text(metadata.get("tapwire")), _text(payload.get("Tag"))])
    if record_type == "Delivery":
        recipient = _text(payload.get("Recipient"))
        if recipient is None:
            return []
        event_id = notice_id("postmark", "delivery", payload.get("MessageID"), recipient.lower())
        return [
            Notice(
                "delivered",
                "postmark",
                event_id,
                row_id,
                recipient,
                "delivered",
                ts_ms=_ms(payload.get("DeliveredAt")),
            )
        ]
    if record_type not in ("Bounce", "SpamComplaint"):
        return []
    bounce_type = str(payload.get("Type", ""))
    kind: NoticeKind | None = (
        "complaint" if record_type == "SpamComplaint" else _BOUNCE_KINDS.get(bounce_type)
    )
    address = _text(payload.get("Email"))
    if kind is None or address is None:
        return []
    event_id = notice_id("postmark", record_type, payload.get("ID") or (payload.get("MessageID"), address))
    detail = _text(payload.get("Details")) or _text(payload.get("Description"))
    when = payload.get("BouncedAt")
    return [
        Notice(
            kind=kind,
            source="postmark",
            notice_id=event_id,
            row_id=row_id,
            recipient=address,
            category=bounce_type.lower() or "complaint",
            detail=scrubbed(detail, address),
            ts_ms=_ms(when),
        )
    ]


def _ms(value: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return value[:1000] if isinstance(value, str) else None

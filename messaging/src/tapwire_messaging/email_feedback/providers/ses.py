"""Amazon SES bounce, complaint and delivery notifications (through SNS) read into notices.

Both SES shapes are read: identity notifications (``notificationType``) and configuration-set event
publishing (``eventType``). The message is found by the return-path token in the ``tapwire`` message tag
(``X-SES-MESSAGE-TAGS``), the original Message-ID (``mail.commonHeaders.messageId`` or ``mail.headers``) or
the return path. Bounce types map as SES defines them: ``Permanent`` is a hard bounce, ``Transient`` a soft
one except for refused content or size (a block), ``Undetermined`` a soft one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from tapwire_messaging.email_feedback.notices import Notice, NoticeKind, notice_id, scrubbed
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens

_TRANSIENT_BLOCKS: Final = frozenset({"MessageTooLarge", "ContentRejected", "AttachmentRejected"})
_MAX_RECIPIENTS: Final = 100


def ses_notices(message: Mapping[str, Any], *, tokens: ReturnPathTokens) -> list[Notice]:
    """The notices of one SES notification (the JSON inside an SNS ``Message``); [] for other kinds."""
    kind = message.get("notificationType") or message.get("eventType")
    mail = _dict(message.get("mail"))
    row_id = tokens.first_row_id(_token_sources(mail))
    if kind == "Bounce":
        return _bounces(_dict(message.get("bounce")), row_id)
    if kind == "Complaint":
        return _complaints(_dict(message.get("complaint")), row_id)
    if kind == "Delivery":
        delivery = _dict(message.get("delivery"))
        return [
            Notice(
                "delivered",
                "ses",
                notice_id("ses", mail.get("messageId"), r, "delivery"),
                row_id,
                r,
                "delivered",
            )
            for r in _strings(delivery.get("recipients"))[:_MAX_RECIPIENTS]
        ]
    return []


def _bounces(bounce: Mapping[str, Any], row_id: int | None) -> list[Notice]:
    bounce_type, subtype = str(bounce.get("bounceType", "")), str(bounce.get("bounceSubType", ""))
    kind: NoticeKind
    if bounce_type == "Permanent":
        kind = "hard_bounce"
    elif bounce_type == "Transient" and subtype in _TRANSIENT_BLOCKS:
        kind = "block"
    else:
        kind = "soft_bounce"
    category = f"{bounce_type}/{subtype}".lower() if subtype else bounce_type.lower() or "undetermined"
    notices = []
    for recipient in _list(bounce.get("bouncedRecipients"))[:_MAX_RECIPIENTS]:
        address = recipient.get("emailAddress")
        if not isinstance(address, str):
            continue
        status = recipient.get("status")
        notices.append(
            Notice(
                kind=kind,
                source="ses",
                notice_id=notice_id("ses", bounce.get("feedbackId"), address.lower()),
                row_id=row_id,
                recipient=address,
                category=category,
                status=status if isinstance(status, str) else None,
                detail=scrubbed(_text(recipient.get("diagnosticCode")), address),
                ts_ms=_ms(bounce.get("timestamp")),
            )
        )
    return notices


def _complaints(complaint: Mapping[str, Any], row_id: int | None) -> list[Notice]:
    feedback_type = str(complaint.get("complaintFeedbackType") or "abuse").lower()
    if feedback_type in ("not-spam", "auth-failure"):
        return []
    return [
        Notice(
            kind="complaint",
            source="ses",
            notice_id=notice_id("ses", complaint.get("feedbackId"), address.lower()),
            row_id=row_id,
            recipient=address,
            category=feedback_type,
            ts_ms=_ms(complaint.get("timestamp")),
        )
        for recipient in _list(complaint.get("complainedRecipients"))[:_MAX_RECIPIENTS]
        if isinstance(address := recipient.get("emailAddress"), str)
    ]


def _token_sources(mail: Mapping[str, Any]) -> list[str | None]:
    sources: list[str | None] = []
    tags = _dict(mail.get("tags"))
    sources += _strings(tags.get("tapwire"))
    common = _dict(mail.get("commonHeaders"))
    sources.append(_text(common.get("messageId")))
    for header in _list(mail.get("headers"))[:200]:
        if str(header.get("name", "")).lower() in ("message-id", "return-path"):
            sources.append(_text(header.get("value")))
    sources.append(_text(mail.get("source")))
    return sources


def _ms(value: Any) -> int | None:
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value[:1000] if isinstance(value, str) else None

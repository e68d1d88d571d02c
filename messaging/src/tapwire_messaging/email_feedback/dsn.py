"""Delivery status notifications (RFC 3464): the reports an MTA mails back to the envelope sender.

A DSN is ``multipart/report; report-type=delivery-status`` with a ``message/delivery-status`` part (one block
of per-message fields, then one block per recipient: ``Final-Recipient``, ``Action``, ``Status``,
``Diagnostic-Code``) and usually the original message or its headers. ``Action: failed`` is a bounce, judged by
its ``Status``; ``delivered``, ``relayed`` and ``expanded`` are deliveries; ``delayed`` says the MTA is still
trying and is not reported on.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import Message
from typing import Final

from tapwire_messaging.email_feedback.classify import Bounce, classify_reply, classify_status, enhanced_status
from tapwire_messaging.email_feedback.notices import Notice, notice_id, scrubbed
from tapwire_messaging.email_feedback.original import OriginalMessage
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens

_DELIVERED: Final = frozenset({"delivered", "relayed", "expanded"})
_MAX_RECIPIENT_BLOCKS: Final = 100


def dsn_notices(
    report: Message, *, report_id: str, tokens: ReturnPathTokens, envelope_recipients: Sequence[str]
) -> list[Notice]:
    """The notices of one DSN (``report`` parsed, ``report_id`` stable for its bytes)."""
    blocks: list[Message] = []
    original = OriginalMessage.empty()
    for part in _parts(report):
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                blocks = [block for block in payload if isinstance(block, Message)]
        elif original.is_empty:
            original = OriginalMessage.from_part(part)
    row_id = tokens.first_row_id([*envelope_recipients, *original.token_sources()])
    notices = []
    for block in blocks[:_MAX_RECIPIENT_BLOCKS]:
        action = str(block.get("Action", "")).strip().lower()
        recipient = _address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient"))
        if not recipient or not action:
            continue
        diagnostic = str(block.get("Diagnostic-Code", "")) or None
        if action in _DELIVERED:
            kind_category: tuple[str, str, str | None] = ("delivered", action, None)
        elif action == "failed":
            bounce = _judged(str(block.get("Status", "")), diagnostic)
            kind_category = (bounce.kind, bounce.category, bounce.status)
        else:
            continue
        kind, category, status = kind_category
        notices.append(
            Notice(
                kind=kind,  # type: ignore[arg-type]  # one of NoticeKind, from the branches above
                source="dsn",
                notice_id=notice_id("dsn", report_id, recipient.lower(), action),
                row_id=row_id,
                recipient=recipient,
                category=category,
                status=status,
                detail=scrubbed(_diagnostic_text(diagnostic), recipient),
            )
        )
    return notices


def _judged(status_field: str, diagnostic: str | None) -> Bounce:
    status = enhanced_status(status_field)
    if status is not None and status[0] in "45":
        return classify_status(status)
    text = _diagnostic_text(diagnostic) or ""
    code = text[:3]
    if code.isdigit():
        judged = classify_reply(int(code), text, command="RCPT")
        if judged is not None:
            return judged
    # A failure the MTA gave up on without saying why: counted, never suppressing at once.
    return Bounce("soft_bounce", "undetermined", status)


def _diagnostic_text(diagnostic: str | None) -> str | None:
    """``smtp; 550 5.1.1 ...`` → ``550 5.1.1 ...``."""
    if not diagnostic:
        return None
    _, sep, text = diagnostic.partition(";")
    return " ".join((text if sep else diagnostic).split()) or None


def _address(field: object) -> str | None:
    """``rfc822; ann@example.com`` → ``ann@example.com``."""
    if field is None:
        return None
    kind, sep, value = str(field).partition(";")
    if not sep:
        value = kind
    elif kind.strip().lower() != "rfc822":
        return None
    value = value.strip().strip("<>").strip()
    return value if "@" in value and len(value) <= 320 else None


def _parts(report: Message) -> list[Message]:
    payload = report.get_payload()
    return [part for part in payload if isinstance(part, Message)] if isinstance(payload, list) else []

"""Feedback reports (ARF, RFC 5965): complaints a mailbox provider's feedback loop mails back.

An ARF report is ``multipart/report; report-type=feedback-report`` with a ``message/feedback-report`` part
(``Feedback-Type``, ``Original-Rcpt-To``, ``Original-Mail-From``, …) and the original message or its headers.
``abuse``, ``fraud``, ``virus`` and ``other`` are complaints; ``not-spam`` (the opposite) and
``auth-failure`` (about the sender's authentication, not the recipient's wish) are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import Message
from typing import Final

from tapwire_messaging.email_feedback.notices import Notice, notice_id
from tapwire_messaging.email_feedback.original import OriginalMessage
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens

COMPLAINT_TYPES: Final = frozenset({"abuse", "fraud", "virus", "other"})


def arf_notices(
    report: Message, *, report_id: str, tokens: ReturnPathTokens, envelope_recipients: Sequence[str]
) -> list[Notice]:
    """The complaint of one feedback report, or nothing for a report that is not a complaint."""
    fields: Message | None = None
    original = OriginalMessage.empty()
    payload = report.get_payload()
    for part in payload if isinstance(payload, list) else []:
        if not isinstance(part, Message):
            continue
        if part.get_content_type() == "message/feedback-report":
            blocks = part.get_payload()
            if isinstance(blocks, list) and blocks and isinstance(blocks[0], Message):
                fields = blocks[0]
        elif original.is_empty:
            original = OriginalMessage.from_part(part)
    if fields is None:
        return []
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    if feedback_type not in COMPLAINT_TYPES:
        return []
    recipient = _bare(fields.get("Original-Rcpt-To")) or _bare(original.to)
    row_id = tokens.first_row_id(
        [*envelope_recipients, str(fields.get("Original-Mail-From", "")), *original.token_sources()]
    )
    return [
        Notice(
            kind="complaint",
            source="arf",
            notice_id=notice_id("arf", report_id),
            row_id=row_id,
            recipient=recipient,
            category=feedback_type,
        )
    ]


def _bare(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if "<" in text and ">" in text:
        text = text[text.index("<") + 1 : text.index(">")]
    text = text.strip()
    return text if "@" in text and len(text) <= 320 else None

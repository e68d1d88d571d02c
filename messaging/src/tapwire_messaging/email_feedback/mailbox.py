"""A message that reached the bounce mailbox, turned into notices: a DSN, an ARF report, or nothing.

Anything else (auto-replies, vacation notices, spam sent to the bounce address) yields no notice. Messages are
parsed with the ``compat32`` policy (header values as they are, no address parsing), only their top-level parts
and the quoted original's headers are read, the caller bounds their size and :data:`MAX_CONTAINERS` their
nesting.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
from collections.abc import Sequence
from email.message import Message
from typing import Final

from tapwire_messaging.email_feedback.arf import arf_notices
from tapwire_messaging.email_feedback.dsn import dsn_notices
from tapwire_messaging.email_feedback.notices import Notice
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens

MAX_MESSAGE_BYTES: Final = 2 * 1024 * 1024
# The standard library's parser recurses once per nested multipart or message part, so a hostile message of
# thousands of nested parts would exhaust the stack. Reports nest two or three deep; a quoted original with
# attachments a few more. Counting the containers bounds the nesting before parsing.
MAX_CONTAINERS: Final = 32
_PARSER: Final = email.parser.BytesParser(policy=email.policy.compat32)


def notices_from_message(
    raw: bytes, *, tokens: ReturnPathTokens, envelope_recipients: Sequence[str] = ()
) -> list[Notice]:
    """The notices ``raw`` (one RFC 5322 message) carries. ``envelope_recipients``: the addresses it was
    delivered to (RCPT TO), which for a bounce is the VERP address naming the message."""
    lowered = raw.lower()
    if lowered.count(b"multipart/") + lowered.count(b"message/") > MAX_CONTAINERS:
        return []
    report = _PARSER.parsebytes(raw)
    if report.get_content_type() != "multipart/report":
        return []
    report_type = str(report.get_param("report-type", "", header="content-type")).lower()
    report_id = _report_id(report, raw)
    if report_type == "delivery-status":
        return dsn_notices(
            report, report_id=report_id, tokens=tokens, envelope_recipients=envelope_recipients
        )
    if report_type == "feedback-report":
        return arf_notices(
            report, report_id=report_id, tokens=tokens, envelope_recipients=envelope_recipients
        )
    return []


def _report_id(report: Message, raw: bytes) -> str:
    """The report's Message-ID when it has one (an MTA resending it keeps it), else a hash of its bytes."""
    message_id = report.get("Message-ID")
    if message_id:
        return "id:" + str(message_id).strip()[:300]
    return "sha:" + hashlib.blake2b(raw, digest_size=16).hexdigest()

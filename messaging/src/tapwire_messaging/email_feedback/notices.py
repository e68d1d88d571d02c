"""What every intake (the bounce mailbox, the providers' webhooks, the sender itself) turns a report into."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final, Literal

NoticeKind = Literal["hard_bounce", "soft_bounce", "block", "complaint", "delivered"]
NoticeSource = Literal["smtp", "dsn", "arf", "ses", "sendgrid", "postmark", "mailgun"]

_ADDRESS: Final = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")
_MAX_DETAIL: Final = 300


@dataclass(frozen=True, slots=True)
class Notice:
    """One report about one message to one recipient.

    ``row_id`` is the outbox row the report is about, from a verified return-path token (None when the report
    names none tapwire can verify: it is then counted and dropped, since nothing says which account it is for).
    ``notice_id`` is stable for the report, so a report that arrives twice is applied once.
    """

    kind: NoticeKind
    source: NoticeSource
    notice_id: str
    row_id: int | None
    recipient: str | None
    category: str
    status: str | None = None
    detail: str | None = None
    ts_ms: int | None = None


def notice_id(source: str, *parts: object) -> str:
    """A stable 32-hex-digit id for a report from what identifies it at its source."""
    joined = "\x1f".join(str(part) for part in (source, *parts))
    return hashlib.blake2b(joined.encode(), digest_size=16).hexdigest()


def scrubbed(detail: str | None, recipient: str | None = None) -> str | None:
    """A diagnostic text fit to keep: on one line, shortened, and without any email address (they name the
    recipient, whose address must not outlive its hash)."""
    if not detail:
        return None
    text = " ".join(detail.split())
    if recipient:
        text = text.replace(recipient, "<recipient>")
    text = _ADDRESS.sub("<address>", text)
    return text[:_MAX_DETAIL] or None

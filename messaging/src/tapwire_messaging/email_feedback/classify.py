"""What an SMTP reply or a delivery status says about the recipient's address.

RFC 3463 enhanced status codes (``class.subject.detail``) carry the answer: class 5 is permanent, 4 transient;
subject 1 is the address, 2 the mailbox, 4 routing, 6 the content, 7 policy and security. Mapped to:

- ``hard_bounce``: the address does not exist or its mailbox is disabled (5.1.x, 5.2.1, 5.4.4). Suppress now.
- ``soft_bounce``: the mailbox cannot take mail for now (full, mail system trouble, a transient failure that
  outlived the relay's retries). Counted; enough of them suppress the address.
- ``block``: the message was refused for its content, size or the sender's reputation or policy (5.6.x, 5.7.x,
  5.3.4). The address is fine: recorded, never suppressed.

A reply without an enhanced code is judged by its SMTP code and the command it answered: 550, 551 and 553 to
RCPT name a bad address; a 5xx to MAIL or DATA is about the message or the sender.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

BounceKind = Literal["hard_bounce", "soft_bounce", "block"]
SmtpCommand = Literal["MAIL", "RCPT", "DATA", ""]

_ENHANCED: Final = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


@dataclass(frozen=True, slots=True)
class Bounce:
    """One failed delivery, judged: its kind, a short category and the enhanced status code when known."""

    kind: BounceKind
    category: str
    status: str | None = None


def enhanced_status(text: str) -> str | None:
    """The first RFC 3463 status code in ``text`` (``5.1.1``), or None."""
    found = _ENHANCED.search(text)
    return found.group(0) if found else None


def classify_status(status: str, *, at_recipient: bool = True) -> Bounce:
    """Judge a failure from its enhanced status code (class 4 or 5). ``at_recipient``: the failure concerns
    the recipient (a RCPT reply, a DSN's per-recipient status); else a 5.0.0 is about the message."""
    klass, subject, detail = (int(part) for part in status.split("."))
    permanent = klass == 5
    judge = _BY_SUBJECT.get(subject)
    if judge is not None:
        kind, category = judge(permanent, detail)
        return Bounce(kind, category, status)
    if permanent and at_recipient:
        return Bounce("hard_bounce", "rejected-recipient", status)
    return Bounce("soft_bounce" if not permanent else "block", "undetermined", status)


# One judge per RFC 3463 subject: (permanent, detail) → the bounce's kind and category.
_Judge = Callable[[bool, int], tuple[BounceKind, str]]


def _address(permanent: bool, detail: int) -> tuple[BounceKind, str]:
    return ("hard_bounce" if permanent else "soft_bounce"), _ADDRESS.get(detail, "bad-address")


def _mailbox(permanent: bool, detail: int) -> tuple[BounceKind, str]:
    if detail == 1:
        return ("hard_bounce" if permanent else "soft_bounce"), "mailbox-disabled"
    if detail == 3:
        return "block", "message-too-large"
    return "soft_bounce", "mailbox-full" if detail == 2 else "mailbox"


def _mail_system(permanent: bool, detail: int) -> tuple[BounceKind, str]:
    if detail == 4:
        return "block", "message-too-large"
    return "soft_bounce", "mail-system"


def _routing(permanent: bool, detail: int) -> tuple[BounceKind, str]:
    if permanent and detail == 4:
        return "hard_bounce", "bad-domain"
    return "soft_bounce", "expired" if detail == 7 else "routing"


def _protocol(permanent: bool, detail: int) -> tuple[BounceKind, str]:
    return "soft_bounce", "protocol"


def _content(permanent: bool, detail: int) -> tuple[BounceKind, str]:
    return "block", "content"


def _policy(permanent: bool, detail: int) -> tuple[BounceKind, str]:
    return "block", "policy"


_BY_SUBJECT: Final[Mapping[int, _Judge]] = {
    1: _address,
    2: _mailbox,
    3: _mail_system,
    4: _routing,
    5: _protocol,
    6: _content,
    7: _policy,
}

_ADDRESS: Final = {
    1: "bad-mailbox",
    2: "bad-domain",
    3: "bad-address-syntax",
    4: "ambiguous-address",
    6: "mailbox-moved",
    10: "null-mx",
}


def classify_reply(code: int, text: str, *, command: SmtpCommand) -> Bounce | None:
    """Judge an SMTP refusal (4xx or 5xx) of one recipient's message; None for a reply that is no refusal.

    A transient refusal (4xx) is a soft bounce only when its enhanced code concerns the address or the mailbox
    (4.1.x, 4.2.x): most 4xx replies from a relay are about the relay itself (busy, rate-limited, greylisting)
    and say nothing about the recipient.
    """
    if code < 400 or code >= 600:
        return None
    status = enhanced_status(text)
    if status is not None and status[0] == str(code)[0]:
        bounce = classify_status(status, at_recipient=command == "RCPT")
        if code < 500 and status.split(".")[1] not in ("1", "2"):
            return None
        return bounce
    if code < 500:
        return None
    if command == "RCPT":
        if code in (550, 551, 553):
            return Bounce("hard_bounce", "bad-mailbox")
        if code == 552:
            return Bounce("soft_bounce", "mailbox-full")
        return Bounce("block", "rejected-recipient")
    return Bounce("block", "rejected-message")

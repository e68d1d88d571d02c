"""The original message a report quotes (``message/rfc822`` or ``text/rfc822-headers``): only its headers."""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from email.message import Message
from typing import Final

_HEADERS: Final = email.parser.HeaderParser(policy=email.policy.compat32)


@dataclass(frozen=True, slots=True)
class OriginalMessage:
    message_id: str | None
    return_path: str | None
    to: str | None
    tags: tuple[str, ...] = ()
    """Provider metadata headers tapwire set (they may carry the return-path token too)."""

    @classmethod
    def empty(cls) -> OriginalMessage:
        return cls(None, None, None)

    @property
    def is_empty(self) -> bool:
        return self.message_id is None and self.return_path is None and self.to is None

    @classmethod
    def from_part(cls, part: Message) -> OriginalMessage:
        """From a report's third part; empty for any other kind of part."""
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return cls.from_headers(payload[0])
            return cls.empty()
        if kind == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                return cls.from_headers(_HEADERS.parsestr(text.decode("utf-8", "replace")))
        return cls.empty()

    @classmethod
    def from_headers(cls, headers: Message) -> OriginalMessage:
        def one(name: str) -> str | None:
            value = headers.get(name)
            return str(value)[:1000] if value is not None else None

        tags = tuple(
            str(value)[:1000]
            for name, value in headers.items()
            if name.lower()
            in ("x-pm-metadata-tapwire", "x-ses-message-tags", "x-mailgun-variables", "x-smtpapi")
        )
        return cls(one("Message-ID"), one("Return-Path"), one("To"), tags)

    def token_sources(self) -> list[str | None]:
        """Where a return-path token may be, most trustworthy first."""
        return [self.return_path, self.message_id, *self.tags]

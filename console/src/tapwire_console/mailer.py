"""Invitation and reset emails to console users, through the deployment's SMTP relay (``TAPWIRE_SMTP_URL``).

These go to the customer's own staff, not to end users, so they bypass the messaging outbox: no tracking, no
consent lookup, no profile. Sent with the standard library's SMTP client in a worker thread: a handful of
messages a day do not need a pool.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    starttls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> Relay:
        """From ``smtp://[user:pass@]host:port[?starttls=true]``; ValueError for anything else."""
        parts = urlsplit(url)
        if parts.scheme != "smtp" or not parts.hostname:
            raise ValueError("TAPWIRE_SMTP_URL must look like smtp://[user:pass@]host:port[?starttls=true]")
        options = parse_qs(parts.query)
        return cls(
            host=parts.hostname,
            port=parts.port or 25,
            starttls=options.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


@dataclass(frozen=True)
class Delivery:
    sent: bool
    reason: str | None = None


class Mailer:
    """Sends one message at a time; ``send`` never raises, it says whether the relay accepted the message."""

    def __init__(self, smtp_url: str | None, sender: str | None, *, timeout_s: float = 15.0) -> None:
        self._relay = Relay.parse(smtp_url) if smtp_url else None
        self._sender = sender or "tapwire@localhost"
        self._timeout_s = timeout_s

    @property
    def configured(self) -> bool:
        return self._relay is not None

    async def send(self, *, to: str, subject: str, text: str) -> Delivery:
        if self._relay is None:
            return Delivery(False, "no SMTP relay is configured (TAPWIRE_SMTP_URL)")
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        try:
            await asyncio.to_thread(self._deliver, self._relay, message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("console email not delivered", extra={"reason": type(exc).__name__})
            return Delivery(False, f"the SMTP relay refused or was unreachable ({type(exc).__name__})")
        return Delivery(True)

    def _deliver(self, relay: Relay, message: EmailMessage) -> None:
        with smtplib.SMTP(relay.host, relay.port, timeout=self._timeout_s) as client:
            if relay.starttls:
                client.starttls(context=ssl.create_default_context())
            if relay.username is not None:
                client.login(relay.username, relay.password or "")
            client.send_message(message)


def invitation_text(*, name: str, account: str, url: str, reset: bool) -> tuple[str, str]:
    """Subject and body of an invitation (or of a password reset, which is a new invitation)."""
    if reset:
        subject = f"Choose a new password for the {account} console"
        intro = f"Hello {name},\n\nan admin of {account} reset your console password."
    else:
        subject = f"You are invited to the {account} console"
        intro = f"Hello {name},\n\nan admin of {account} invited you to its tapwire console."
    body = (
        f"{intro}\n\nChoose your password here (the link works once, for 3 days):\n\n{url}\n\n"
        "If you did not expect this message, ignore it.\n"
    )
    return subject, body

"""Email over SMTP through a small pool of kept-open sessions, pipelined where the server allows it.

Each message carries a Message-ID derived from its outbox key: the one idempotency key SMTP has. Mailbox
providers drop a second copy with a Message-ID they already hold, which closes the window where a message was
accepted by the server but the sender died before recording it. RFC 8058 one-click unsubscribe headers are set
by the caller in ``OutboundMessage.headers``.

A message with a return-path token carries it in its Message-ID, its envelope sender (when the caller set a VERP
``return_path``) and the metadata header of the service behind the URL (``provider``), so bounce and
complaint reports name it (``tapwire_messaging.email_feedback``). A refusal is judged for what it says about the
address: a hard bounce comes back ``unregistered``, and every refusal carries its ``bounce`` judgement.
"""

from __future__ import annotations

import asyncio
import binascii
import email.utils
import logging
import time
from dataclasses import dataclass
from email.header import Header
from urllib.parse import parse_qs, unquote, urlsplit

from tapwire_messaging.channels.base import ChannelAdapter, OutboundMessage, SendResult
from tapwire_messaging.channels.mailbox import Mailbox
from tapwire_messaging.channels.smtp_session import SmtpProtocolError, SmtpSession
from tapwire_messaging.email_feedback.classify import SmtpCommand, classify_reply

log = logging.getLogger(__name__)

_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    implicit_tls: bool = False
    pool_size: int = 8
    timeout_s: float = 30.0

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 8) -> SmtpConfig:
        """Parse ``smtp://[user:pass@]host:port[?starttls=true][&pool=N]`` (``smtps://`` for implicit TLS).
        Raises ValueError naming what is wrong."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"TAPWIRE_SMTP_URL must start with smtp:// or smtps://, got {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("TAPWIRE_SMTP_URL names no host")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            port = parts.port or (465 if parts.scheme == "smtps" else 25)
            pool = int(query.get("pool", pool_size))
        except ValueError as exc:
            raise ValueError(f"TAPWIRE_SMTP_URL: {exc}") from exc
        if pool < 1:
            raise ValueError("TAPWIRE_SMTP_URL: pool must be at least 1")
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=query.get("starttls", "").lower() in _TRUE,
            implicit_tls=parts.scheme == "smtps",
            pool_size=pool,
        )


class SmtpAdapter(ChannelAdapter):
    """Sends over ``pool_size`` kept-open SMTP sessions, each carrying many messages.

    Sends are spread over the sessions in turn. A session whose server offers PIPELINING carries several
    transactions at once (each waits only for its own replies); otherwise one at a time. SMTP 2xx → sent;
    4xx → failed (retry later); 5xx → rejected; a broken connection or timeout → failed, and the session is
    replaced on its next use.
    """

    name = "smtp"

    def __init__(self, config: SmtpConfig, *, sender: str, provider: str = "smtp") -> None:
        """``sender`` is ``TAPWIRE_EMAIL_FROM``: an address, or a display name and an address in angle
        brackets. ``provider`` (``TAPWIRE_EMAIL_PROVIDER``) picks the metadata header return-path tokens ride
        in. Raises ValueError when the sender names no usable address."""
        self.config = config
        self.provider = provider
        try:
            self.sender = _envelope_ready(Mailbox.parse(sender))
        except ValueError as exc:
            raise ValueError(f"TAPWIRE_EMAIL_FROM: {exc}") from exc
        self._from_header = self.sender.header()
        # The sender's domain names the client in EHLO and makes Message-IDs globally unique.
        self._sender_domain = self.sender.domain
        self._sessions: list[SmtpSession | None] = [None] * config.pool_size
        self._connecting = [asyncio.Lock() for _ in range(config.pool_size)]
        self._next = 0
        self._date_second = 0
        self._date_text = ""

    def _date(self) -> str:
        """The Date header, formatted once per second rather than once per message."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date_text = now, email.utils.formatdate(now, usegmt=True)
        return self._date_text

    def message_id(self, message: OutboundMessage) -> str:
        if message.feedback_token:
            return f"<{message.idempotency_key}.{message.feedback_token}@{self._sender_domain}>"
        return f"<{message.idempotency_key}@{self._sender_domain}>"

    def build(self, message: OutboundMessage) -> bytes:
        """The RFC 5322 message for ``message``, as bytes ready for DATA.

        Built directly rather than through ``email.message``: its header machinery costs about a millisecond
        per message, the largest cost of a send. Header values lose CR/LF (no header injection from templates),
        non-ASCII values are RFC 2047 encoded (in ``From`` and ``To`` only the display name), bodies are UTF-8
        quoted-printable. Raises ValueError when ``message.to`` is not one usable mailbox.
        """
        recipient = _envelope_ready(Mailbox.parse(message.to))
        return self._build(message, recipient)

    def _build(self, message: OutboundMessage, recipient: Mailbox) -> bytes:
        lines = [f"From: {self._from_header}", f"To: {recipient.header()}"]
        headers = [
            ("Subject", message.subject or ""),
            ("Date", self._date()),
            ("Message-ID", self.message_id(message)),
            ("MIME-Version", "1.0"),
            *message.headers.items(),
            *_metadata_headers(self.provider, message.feedback_token),
        ]
        lines.extend(f"{name}: {_header_value(value)}" for name, value in headers)
        if message.html:
            boundary = f"=_tw_{message.idempotency_key}"
            lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
            parts = [
                f"--{boundary}\r\n{_text_part(message.body, 'plain')}",
                f"--{boundary}\r\n{_text_part(message.html, 'html')}",
                f"--{boundary}--\r\n",
            ]
            body = "\r\n" + "\r\n".join(parts)
        else:
            body = _text_part(message.body, "plain")
        return ("\r\n".join(lines) + "\r\n" + body).encode("ascii")

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            recipient = _envelope_ready(Mailbox.parse(message.to))
        except ValueError as exc:
            return SendResult("rejected", f"invalid address: {exc}")
        payload = self._build(message, recipient)
        slot = self._next
        self._next = (slot + 1) % len(self._sessions)
        try:
            session = await self._session(slot)
        except (SmtpProtocolError, OSError, TimeoutError) as exc:
            return SendResult("failed", f"connect: {exc}")
        envelope_sender = message.return_path or self.sender.address
        try:
            reply = await session.send(envelope_sender, recipient.address, payload)
        except SmtpProtocolError as exc:
            return SendResult("failed", str(exc))
        except ValueError as exc:
            return SendResult("rejected", f"invalid address: {exc}")
        if reply.code == 250:
            return SendResult("sent", reply.text, provider_id=self.message_id(message))
        bounce = classify_reply(reply.code, reply.text, command=_command(reply.command))
        if 400 <= reply.code < 500:
            return SendResult("failed", str(reply), bounce=bounce)
        if bounce is not None and bounce.kind == "hard_bounce":
            return SendResult("unregistered", str(reply), bounce=bounce)
        return SendResult("rejected", str(reply), bounce=bounce)

    async def _session(self, slot: int) -> SmtpSession:
        session = self._sessions[slot]
        if session is not None and session.usable:
            return session
        async with self._connecting[slot]:
            session = self._sessions[slot]
            if session is None or not session.usable:
                config = self.config
                session = await SmtpSession.open(
                    config.host,
                    config.port,
                    helo_name=self._sender_domain,
                    implicit_tls=config.implicit_tls,
                    starttls=config.starttls,
                    username=config.username,
                    password=config.password,
                    timeout_s=config.timeout_s,
                )
                self._sessions[slot] = session
            return session

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, [None] * len(self._sessions)
        await asyncio.gather(*(s.quit() for s in sessions if s is not None))


def _command(name: str) -> SmtpCommand:
    return "MAIL" if name == "MAIL" else "RCPT" if name == "RCPT" else "DATA"


def _metadata_headers(provider: str, token: str | None) -> list[tuple[str, str]]:
    """The header that makes ``provider`` hand the token back in its webhook events."""
    if not token:
        return []
    if provider == "ses":
        return [("X-SES-MESSAGE-TAGS", f"tapwire={token}")]
    if provider == "sendgrid":
        return [("X-SMTPAPI", f'{{"unique_args": {{"tapwire": "{token}"}}}}')]
    if provider == "postmark":
        return [("X-PM-Metadata-tapwire", token)]
    if provider == "mailgun":
        return [("X-Mailgun-Variables", f'{{"tapwire": "{token}"}}')]
    return []


def _envelope_ready(mailbox: Mailbox) -> Mailbox:
    """The mailbox with an ASCII address: an internationalised domain in its IDNA form. A non-ASCII local part
    would need SMTPUTF8 (RFC 6531), which this client does not speak: ValueError."""
    if mailbox.address.isascii():
        return mailbox
    local, _, domain = mailbox.address.rpartition("@")
    if not local.isascii():
        raise ValueError(f"{mailbox.address!r} has a non-ASCII local part (SMTPUTF8 is not supported)")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{mailbox.address!r} has an invalid domain") from exc
    return Mailbox(f"{local}@{ascii_domain}", mailbox.display_name)


def _header_value(value: str) -> str:
    flat = " ".join(value.splitlines())
    if flat.isascii():
        return flat
    return Header(flat, "utf-8").encode(linesep="\r\n")


def _text_part(text: str, subtype: str) -> str:
    """A text part's headers and UTF-8 quoted-printable body, CRLF line ends."""
    normalised = "\r\n".join(text.splitlines()).encode("utf-8")
    encoded = (
        binascii.b2a_qp(normalised, istext=True).decode("ascii").replace("\r\n", "\n").replace("\n", "\r\n")
    )
    return (
        f"Content-Type: text/{subtype}; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{encoded}\r\n"
    )

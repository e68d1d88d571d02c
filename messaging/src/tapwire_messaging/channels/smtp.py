"""Email over SMTP (aiosmtplib) through a small pool of kept-open connections.

Each message carries a Message-ID derived from its outbox key: the one idempotency key SMTP has. Mailbox
providers drop a second copy with a Message-ID they already hold, which closes the window where a message was
accepted by the server but the sender died before recording it. RFC 8058 one-click unsubscribe headers are set
by the caller in ``OutboundMessage.headers``.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import email.utils
import logging
from dataclasses import dataclass
from email.header import Header
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from tapwire_messaging.channels.base import ChannelAdapter, OutboundMessage, SendResult

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
    """Sends through at most ``pool_size`` concurrent SMTP sessions, reusing each for many messages.

    SMTP 2xx → sent; 4xx → failed (retry later); 5xx → rejected; a broken connection → failed, and the
    connection is replaced.
    """

    name = "smtp"

    def __init__(self, config: SmtpConfig, *, sender: str) -> None:
        self.config = config
        self.sender = sender
        self._sender_domain = sender.rpartition("@")[2] or "tapwire.local"
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(config.pool_size)
        self._open: set[aiosmtplib.SMTP] = set()

    def message_id(self, message: OutboundMessage) -> str:
        return f"<{message.idempotency_key}@{self._sender_domain}>"

    def build(self, message: OutboundMessage) -> bytes:
        """The RFC 5322 message for ``message``, as bytes ready for DATA.

        Built directly rather than through ``email.message``: its header machinery costs about a millisecond
        per message, the largest cost of a send. Header values lose CR/LF (no header injection from templates),
        non-ASCII values are RFC 2047 encoded, bodies are UTF-8 quoted-printable.
        """
        headers = [
            ("From", self.sender),
            ("To", message.to),
            ("Subject", message.subject or ""),
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Message-ID", self.message_id(message)),
            ("MIME-Version", "1.0"),
            *message.headers.items(),
        ]
        lines = [f"{name}: {_header_value(value)}" for name, value in headers]
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
        payload = self.build(message)
        async with self._slots:
            try:
                client = await self._checkout()
            except (aiosmtplib.SMTPException, OSError) as exc:
                return SendResult("failed", f"connect: {exc}")
            try:
                errors, reply = await client.sendmail(self.sender, [message.to], payload)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                self._idle.put_nowait(client)
                return self._refused(exc.recipients[0].code if exc.recipients else 550, str(exc))
            except aiosmtplib.SMTPResponseException as exc:
                self._idle.put_nowait(client)
                return self._refused(exc.code, exc.message)
            except (aiosmtplib.SMTPException, OSError) as exc:
                await self._discard(client)
                return SendResult("failed", f"{type(exc).__name__}: {exc}")
            self._idle.put_nowait(client)
        if errors:
            code, text = next(iter(errors.values()))
            return self._refused(code, text)
        return SendResult("sent", reply, provider_id=self.message_id(message))

    @staticmethod
    def _refused(code: int, text: str) -> SendResult:
        return SendResult("failed" if 400 <= code < 500 else "rejected", f"{code} {text}")

    async def _checkout(self) -> aiosmtplib.SMTP:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                return client
            self._open.discard(client)
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.implicit_tls,
            start_tls=config.starttls,
            timeout=config.timeout_s,
        )
        await client.connect()
        if config.username:
            await client.login(config.username, config.password or "")
        self._open.add(client)
        return client

    async def _discard(self, client: aiosmtplib.SMTP) -> None:
        self._open.discard(client)
        with contextlib.suppress(Exception):
            client.close()

    async def close(self) -> None:
        clients, self._open = self._open, set()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.quit()
        while not self._idle.empty():
            self._idle.get_nowait()


def _header_value(value: str) -> str:
    flat = " ".join(value.splitlines())
    if flat.isascii():
        return flat
    return Header(flat, "utf-8").encode()


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

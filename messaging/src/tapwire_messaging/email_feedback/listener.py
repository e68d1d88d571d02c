"""The bounce mailbox: an SMTP listener (aiosmtpd) that takes DSNs and ARF reports addressed to the bounce
address and applies them before answering.

It accepts mail only for the bounce address itself (``bounces@bounce.example``, the address feedback loops
report to) and its VERP forms carrying a valid token (``bounces+tw1f4-…@bounce.example``); every other
recipient gets 550, so it relays nothing and collects no spam. A message is answered 250 only once its notices
are applied (events on the bus, records in the control store); 451 when a store is down, so the reporting MTA
tries again. Messages are capped at :data:`~tapwire_messaging.email_feedback.mailbox.MAX_MESSAGE_BYTES`,
connections at ``max_connections`` and every command waits at most ``timeout_s`` for the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from tapwire_messaging.email_feedback.intake import FeedbackIntake, IntakeUnavailable
from tapwire_messaging.email_feedback.mailbox import MAX_MESSAGE_BYTES, notices_from_message
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens

log = logging.getLogger(__name__)

_MAX_RECIPIENTS = 10


class BounceMailbox:
    """aiosmtpd's handler: which recipients are taken, and what happens to a message."""

    def __init__(self, *, bounce_address: str, tokens: ReturnPathTokens, intake: FeedbackIntake) -> None:
        local, _, domain = bounce_address.strip().lower().rpartition("@")
        self._local, self._domain = local, domain
        self._tokens = tokens
        self._intake = intake

    def accepts(self, address: str) -> bool:
        local, _, domain = address.strip().lower().rpartition("@")
        if domain != self._domain:
            return False
        if local == self._local:
            return True
        base, plus, token = local.partition("+")
        return bool(plus) and base == self._local and self._tokens.row_id(token) is not None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not self.accepts(address):
            return "550 5.1.1 no such mailbox here"
        if len(envelope.rcpt_tos) >= _MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            notices = notices_from_message(raw, tokens=self._tokens, envelope_recipients=envelope.rcpt_tos)
            await self._intake.apply(notices)
        except IntakeUnavailable as exc:
            log.warning("bounce report deferred", extra={"error": str(exc)})
            return "451 4.3.0 cannot record this report now; try again later"
        except Exception:
            log.exception("bounce report could not be read")
            return "554 5.6.0 this report could not be read"
        return "250 2.0.0 OK"


class _LimitedSmtp(SMTP):
    """aiosmtpd's session, counted: past the listener's limit a connection is told 421 and closed."""

    def __init__(self, listener: BounceListener, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._listener.connections >= self._listener.max_connections:
            transport.write(b"421 4.3.2 too many connections; try again later\r\n")  # type: ignore[attr-defined]
            transport.close()
            return
        self._listener.connections += 1
        self._counted = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not getattr(self, "_counted", False):
            return  # refused in connection_made: aiosmtpd never set this session up
        self._listener.connections -= 1
        self._counted = False
        super().connection_lost(error)


class BounceListener:
    """Serves :class:`BounceMailbox` on ``host:port`` in the running event loop."""

    def __init__(
        self,
        mailbox: BounceMailbox,
        *,
        host: str,
        port: int,
        hostname: str,
        max_connections: int = 100,
        timeout_s: float = 60.0,
    ) -> None:
        self.mailbox = mailbox
        self.host = host
        self.port = port
        self.hostname = hostname
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; raises OSError when the port is taken."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _LimitedSmtp(
                self,
                self.mailbox,
                hostname=self.hostname,
                ident="tapwire bounce mailbox",
                data_size_limit=MAX_MESSAGE_BYTES,
                timeout=self.timeout_s,
                decode_data=False,
            ),
            self.host,
            self.port,
        )
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        log.info("bounce mailbox listening", extra={"host": self.host, "port": self.port})

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # Since Python 3.12 this also waits for open sessions, which the session timeout bounds.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            self._server = None

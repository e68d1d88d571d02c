"""One SMTP client session (RFC 5321) with command pipelining (RFC 2920) when the server offers it.

Replies are parsed as bytes arrive and handed, in order, to the futures of the commands that asked for them, so
a group of commands can be written at once and their replies awaited together. With ``PIPELINING`` a message
costs two round trips (MAIL FROM, RCPT TO and DATA in one write; then the content) instead of four, and the
next transaction's commands may follow the previous message's content without waiting for its reply. When the
server also offers CHUNKING (RFC 3030, as Postfix does), the content goes with the commands as ``BDAT <size>
LAST``: one write and one round trip per message. Without PIPELINING every command waits for its reply, as RFC
5321 requires.

Supports implicit TLS, STARTTLS and AUTH PLAIN / LOGIN. Recipient addresses and the envelope sender must not
contain CR, LF or angle brackets (``ValueError``).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from dataclasses import dataclass, replace
from typing import cast

# RFC 5321 allows 512-octet reply lines; multi-line EHLO replies are longer in total. Anything past this is not
# an SMTP server talking.
MAX_PENDING_REPLY_BYTES = 64 * 1024
_FORBIDDEN_IN_ADDRESS = frozenset("\r\n<>")


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str
    command: str = ""
    """In a reply :meth:`SmtpSession.send` returns: the command it answered, ``MAIL``, ``RCPT`` or ``DATA``
    (empty: the content's reply), which tells a refused recipient from a refused message."""

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class SmtpProtocolError(Exception):
    """The session is unusable: the connection broke, timed out, or the server broke the protocol."""


class _ReplyReader(asyncio.Protocol):
    """Splits the server's byte stream into replies and resolves one waiting future per reply, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.timeout_s = timeout_s
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._waiters: deque[asyncio.Future[Reply]] = deque()
        self._waiting_since = loop.time()
        self._outgoing: list[bytes] = []
        self.failure: SmtpProtocolError | None = None
        # The greeting arrives unasked.
        self.greeting = self.expect()
        self._watchdog = loop.call_later(self._check_every, self._check)

    @property
    def _check_every(self) -> float:
        return max(0.05, self.timeout_s / 4)

    def expect(self) -> asyncio.Future[Reply]:
        waiter: asyncio.Future[Reply] = self.loop.create_future()
        if self.failure is not None:
            waiter.set_exception(self.failure)
            waiter.exception()  # read here so an unawaited failure is not logged as unretrieved
        else:
            if not self._waiters:
                self._waiting_since = self.loop.time()
            self._waiters.append(waiter)
        return waiter

    def write(self, data: bytes) -> None:
        """Queue ``data``; everything written during one pass of the event loop leaves in one send."""
        if self.transport is None:
            raise self.failure or SmtpProtocolError("not connected")
        if not self._outgoing:
            self.loop.call_soon(self._flush)
        self._outgoing.append(data)

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self.transport is not None and outgoing:
            self.transport.write(b"".join(outgoing))

    def _check(self) -> None:
        """Fail the session when the oldest awaited reply is late by more than the timeout (checked every
        quarter timeout: one timer per session instead of one per command)."""
        if self.failure is not None:
            return
        if self._waiters and self.loop.time() - self._waiting_since > self.timeout_s:
            self.fail(SmtpProtocolError(f"no reply from the server within {self.timeout_s:g}s"))
            return
        self._watchdog = self.loop.call_later(self._check_every, self._check)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) != -1:
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            self._lines.append(line)
            if line[3:4] == b"-":
                continue
            lines, self._lines = self._lines, []
            try:
                code = int(line[:3])
            except ValueError:
                self.fail(SmtpProtocolError(f"malformed reply line {line[:80]!r}"))
                return
            if not self._waiters:
                self.fail(SmtpProtocolError(f"unexpected reply {line[:80]!r}"))
                return
            text = "\n".join(x[4:].decode("utf-8", "replace") for x in lines)
            waiter = self._waiters.popleft()
            self._waiting_since = self.loop.time()
            if not waiter.done():
                waiter.set_result(Reply(code, text))
        del buffer[:start]
        if len(buffer) > MAX_PENDING_REPLY_BYTES or len(self._lines) > 1000:
            self.fail(SmtpProtocolError("reply too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.fail(SmtpProtocolError(f"connection lost: {exc}" if exc else "connection closed by the server"))

    def fail(self, error: SmtpProtocolError) -> None:
        """Fail every waiting command and close: replies after a failure could be paired with the wrong one."""
        if self.failure is None:
            self.failure = error
        self._watchdog.cancel()
        self._outgoing.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()
        if self.transport is not None:
            self.transport.abort()
            self.transport = None


class SmtpSession:
    """A connected, greeted (and, as configured, TLS-protected and authenticated) SMTP session.

    ``send`` may be called by several tasks at once: transactions are serialised on the connection, and with
    pipelining the next one starts as soon as the previous one's content is written. Open with :meth:`open`.
    """

    def __init__(self, reader: _ReplyReader) -> None:
        self._reader = reader
        self._turn = asyncio.Lock()
        self.extensions: dict[str, str] = {}
        self.in_flight = 0

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self.extensions

    @property
    def chunking(self) -> bool:
        """BDAT (RFC 3030) together with pipelining: a whole transaction goes out in one write."""
        return "chunking" in self.extensions and self.pipelining

    @property
    def usable(self) -> bool:
        return self._reader.failure is None and self._reader.transport is not None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        helo_name: str,
        implicit_tls: bool = False,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> SmtpSession:
        """Connect, read the greeting, EHLO (HELO if refused), STARTTLS and AUTH as asked.

        Raises OSError when the server cannot be reached and SmtpProtocolError when it refuses the session.
        """
        loop = asyncio.get_running_loop()
        context = None
        if implicit_tls or starttls:
            context = ssl_context or ssl.create_default_context()
        async with asyncio.timeout(timeout_s):
            _, reader = await loop.create_connection(
                lambda: _ReplyReader(loop, timeout_s),
                host,
                port,
                ssl=context if implicit_tls else None,
                server_hostname=host if implicit_tls else None,
            )
            session = cls(reader)
            try:
                await session._handshake(
                    host=host,
                    helo_name=helo_name,
                    starttls=starttls,
                    context=context,
                    username=username,
                    password=password,
                )
            except BaseException:
                session.abort()
                raise
        return session

    async def _handshake(
        self,
        *,
        host: str,
        helo_name: str,
        starttls: bool,
        context: ssl.SSLContext | None,
        username: str | None,
        password: str | None,
    ) -> None:
        self._check(await self._reader.greeting, 220, "greeting")
        await self._hello(helo_name)
        if starttls:
            if "starttls" not in self.extensions:
                raise SmtpProtocolError("the server does not offer STARTTLS")
            self._check(await self._command(b"STARTTLS"), 220, "STARTTLS")
            transport = self._reader.transport
            assert transport is not None and context is not None
            loop = asyncio.get_running_loop()
            tls = await loop.start_tls(transport, self._reader, context, server_hostname=host)
            if tls is None:
                raise SmtpProtocolError("TLS handshake failed")
            self._reader.transport = tls
            await self._hello(helo_name)
        if username is not None:
            await self._login(username, password or "")

    async def _hello(self, helo_name: str) -> None:
        reply = await self._command(b"EHLO " + helo_name.encode("ascii"))
        if reply.code != 250:
            self._check(await self._command(b"HELO " + helo_name.encode("ascii")), 250, "HELO")
            self.extensions = {}
            return
        extensions = {}
        for line in reply.text.split("\n")[1:]:
            keyword, _, params = line.strip().partition(" ")
            extensions[keyword.lower()] = params
        self.extensions = extensions

    async def _login(self, username: str, password: str) -> None:
        methods = self.extensions.get("auth", "").upper().split()
        if "PLAIN" in methods or not methods:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
            self._check(await self._command(f"AUTH PLAIN {token}".encode("ascii")), 235, "AUTH")
            return
        if "LOGIN" not in methods:
            raise SmtpProtocolError(f"no supported AUTH method among {methods}")
        self._check(await self._command(b"AUTH LOGIN"), 334, "AUTH")
        self._check(await self._command(base64.b64encode(username.encode())), 334, "AUTH")
        self._check(await self._command(base64.b64encode(password.encode())), 235, "AUTH")

    async def send(self, sender: str, recipient: str, content: bytes) -> Reply:
        """Deliver ``content`` (a message with CRLF line ends, not yet dot-stuffed) to ``recipient``.

        Returns the reply that decided the transaction: 250 for the content when accepted, otherwise the first
        refusal (MAIL, RCPT or DATA), naming its command. Raises SmtpProtocolError (the session is then unusable) when the
        connection breaks or a reply does not come within the timeout.
        """
        if self.chunking:
            return await self._send_chunked(sender, recipient, content)
        envelope = b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (_address(sender), _address(recipient))
        data = _dot_stuffed(content)
        self.in_flight += 1
        try:
            async with self._turn:
                done = await self._transaction(envelope, data)
                if isinstance(done, Reply):
                    return done
                if not self.pipelining:
                    # Without pipelining the next command may only follow this reply.
                    return await done
            return await done
        finally:
            self.in_flight -= 1

    async def _send_chunked(self, sender: str, recipient: str, content: bytes) -> Reply:
        """RSET, MAIL, RCPT and ``BDAT <size> LAST`` with the content, written at once; no turn to wait for.

        The leading RSET makes each transaction independent of how the previous one on this session ended
        (a refused recipient leaves the sender set on some servers), so transactions can overlap freely.
        """
        reader = self._reader
        self._write(
            b"RSET\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n%s"
            % (_address(sender), _address(recipient), len(content), content)
        )
        waiters = (reader.expect(), reader.expect(), reader.expect(), reader.expect())
        self.in_flight += 1
        try:
            await waiters[3]
        finally:
            self.in_flight -= 1
        reset, mail, rcpt, done = (w.result() for w in waiters)
        if reset.code != 250:
            reader.fail(SmtpProtocolError(f"RSET refused: {reset}"))
        return _first_refusal(mail, rcpt, replace(done, command="DATA"))

    async def _transaction(self, envelope: bytes, data: bytes) -> Reply | asyncio.Future[Reply]:
        """Run MAIL, RCPT, DATA and write the content; the content's pending reply, or the refusal."""
        reader = self._reader
        if self.pipelining:
            self._write(envelope)
            waiters = (reader.expect(), reader.expect(), reader.expect())
            # Replies come in order: once DATA's is in, so are the others.
            await waiters[2]
            mail, rcpt, start = (w.result() for w in waiters)
        else:
            lines = envelope.split(b"\r\n")
            mail = rcpt = start = Reply(503, "not sent")
            mail = await self._command(lines[0])
            if mail.code == 250:
                rcpt = await self._command(lines[1])
                if rcpt.code in (250, 251):
                    start = await self._command(lines[2])
        if start.code == 354 and mail.code == 250 and rcpt.code in (250, 251):
            self._write(data)
            return reader.expect()
        if start.code == 354:
            # A server that opened DATA despite a refused sender or recipient gets an empty message to end it.
            self._write(b".\r\n")
            await reader.expect()
        reset = await self._command(b"RSET")
        if reset.code != 250:
            reader.fail(SmtpProtocolError(f"RSET refused: {reset}"))
        return _first_refusal(mail, rcpt, replace(start, command="DATA"))

    async def _command(self, line: bytes) -> Reply:
        self._write(line + b"\r\n")
        return await self._reader.expect()

    def _write(self, data: bytes) -> None:
        self._reader.write(data)

    @staticmethod
    def _check(reply: Reply, code: int, what: str) -> None:
        if reply.code != code:
            raise SmtpProtocolError(f"{what} refused: {reply}")

    async def quit(self) -> None:
        """Say goodbye and close; never raises."""
        if self.usable:
            try:
                async with asyncio.timeout(min(5.0, self._reader.timeout_s)):
                    async with self._turn:
                        await self._command(b"QUIT")
            except (SmtpProtocolError, TimeoutError, OSError):
                pass
        self.abort()

    def abort(self) -> None:
        self._reader.fail(SmtpProtocolError("session closed"))


def _first_refusal(mail: Reply, rcpt: Reply, last: Reply) -> Reply:
    """The first of MAIL's and RCPT's replies that refused, named by its command; else ``last``."""
    if mail.code != 250:
        return replace(mail, command="MAIL")
    if rcpt.code not in (250, 251):
        return replace(rcpt, command="RCPT")
    return last


def _address(address: str) -> bytes:
    if _FORBIDDEN_IN_ADDRESS.intersection(address):
        raise ValueError(f"address {address!r} contains CR, LF or angle brackets")
    return address.encode("utf-8")


def _dot_stuffed(content: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency plus the terminating ``.`` line."""
    if content.startswith(b"."):
        content = b"." + content
    content = content.replace(b"\r\n.", b"\r\n..")
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"

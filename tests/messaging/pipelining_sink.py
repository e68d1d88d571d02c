"""A small asyncio SMTP sink that offers PIPELINING (RFC 2920) and CHUNKING (RFC 3030), as Postfix does.

It speaks enough SMTP for a sender: EHLO/HELO, MAIL, RCPT, DATA (content ends at ``<CRLF>.<CRLF>``, dot-stuffing
undone), BDAT, RSET, NOOP, QUIT; other commands get ``502``. Either extension can be switched off. Commands are
answered in order; the replies to everything that arrived in one read go out in one write, which is what lets a pipelining client batch its round trips.
Recipients in ``reject_rcpt`` get ``550``, and DATA without an accepted recipient gets ``554``.

Each accepted message is passed to ``on_message(recipients, content)``; the content is the message as sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import cast

MAX_LINE = 4096

OnMessage = Callable[[list[str], bytes], None]


class PipeliningSmtpServer(asyncio.Protocol):
    def __init__(
        self,
        on_message: OnMessage,
        *,
        pipelining: bool = True,
        chunking: bool = True,
        reject_rcpt: Collection[str] = (),
        hostname: str = "sink.test",
    ) -> None:
        self.on_message = on_message
        self.pipelining = pipelining
        self.chunking = chunking
        self.bdat_left: int | None = None
        self.bdat_last = False
        self.chunks: list[bytes] = []
        self.reject_rcpt = reject_rcpt
        self.hostname = hostname
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.in_data = False
        self.sender: str | None = None
        self.recipients: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(f"220 {self.hostname} ESMTP sink\r\n".encode())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies: list[bytes] = []
        start, go_on = 0, True
        while go_on:
            if self.bdat_left is not None:
                start, go_on = self.read_chunk(start, replies)
            elif self.in_data:
                start, go_on = self.read_data(start, replies)
            else:
                start, go_on = self.read_command(start, replies)
        del self.buffer[:start]
        if replies and self.transport is not None:
            self.transport.write(b"\r\n".join(replies) + b"\r\n")
            if replies[-1].startswith(b"221"):
                self.transport.close()

    # Each read step takes what it can from the buffer at ``start``, adds its replies, and returns where the next
    # step starts and whether there is more to read now.

    def read_chunk(self, start: int, replies: list[bytes]) -> tuple[int, bool]:
        """BDAT content: as much of the announced size as has arrived."""
        assert self.bdat_left is not None
        take = min(self.bdat_left, len(self.buffer) - start)
        self.chunks.append(bytes(self.buffer[start : start + take]))
        self.bdat_left -= take
        if self.bdat_left:
            return start + take, False
        replies.append(self.chunk_done())
        return start + take, True

    def read_data(self, start: int, replies: list[bytes]) -> tuple[int, bool]:
        """DATA content, once its ``<CRLF>.<CRLF>`` has arrived."""
        buffer = self.buffer
        if buffer.startswith(b".\r\n", start):
            content, start = b"", start + 3
        else:
            end = buffer.find(b"\r\n.\r\n", start)
            if end == -1:
                return start, False
            content, start = bytes(buffer[start : end + 2]), end + 5
        self.in_data = False
        if content.startswith(b".."):
            content = content[1:]
        self.on_message(self.recipients, content.replace(b"\r\n..", b"\r\n."))
        replies.append(b"250 2.0.0 queued")
        self.sender, self.recipients = None, []
        return start, True

    def read_command(self, start: int, replies: list[bytes]) -> tuple[int, bool]:
        """One command line, once its CRLF has arrived; nothing is read after QUIT."""
        end = self.buffer.find(b"\r\n", start)
        if end == -1:
            if len(self.buffer) - start > MAX_LINE:
                replies.append(b"500 5.5.6 line too long")
                return len(self.buffer), False
            return start, False
        reply = self.command(bytes(self.buffer[start:end]))
        if reply:
            replies.append(reply)
        return end + 2, not reply.startswith(b"221")

    def chunk_done(self) -> bytes:
        self.bdat_left = None
        if not self.recipients:
            self.chunks = []
            return b"554 5.5.1 no valid recipients"
        if not self.bdat_last:
            return b"250 2.0.0 chunk accepted"
        content, self.chunks = b"".join(self.chunks), []
        self.on_message(self.recipients, content)
        self.sender, self.recipients = None, []
        return b"250 2.0.0 queued"

    def command(self, line: bytes) -> bytes:
        """The reply to one command line; empty for BDAT, which is answered once its chunk is read."""
        verbs: dict[bytes, Callable[[bytes], bytes]] = {
            b"EHLO": self.ehlo,
            b"HELO": lambda _line: f"250 {self.hostname}".encode(),
            b"MAIL": self.mail,
            b"RCPT": self.rcpt,
            b"DATA": self.data,
            b"RSET": self.rset,
            b"NOOP": lambda _line: b"250 2.0.0 OK",
            b"QUIT": lambda _line: b"221 2.0.0 bye",
        }
        if self.chunking:
            verbs[b"BDAT"] = self.bdat
        handler = verbs.get(line[:4].upper())
        return handler(line) if handler is not None else b"502 5.5.2 not implemented"

    def ehlo(self, _line: bytes) -> bytes:
        offers = ["PIPELINING"] if self.pipelining else []
        offers += ["CHUNKING"] if self.chunking else []
        return "\r\n".join(
            f"250{'-' if i < len(offers) else ' '}{x}" for i, x in enumerate([self.hostname, *offers])
        ).encode()

    def mail(self, line: bytes) -> bytes:
        if self.sender is not None:
            return b"503 5.5.1 nested MAIL"
        self.sender = _path(line)
        return b"250 2.1.0 OK"

    def rcpt(self, line: bytes) -> bytes:
        if self.sender is None:
            return b"503 5.5.1 need MAIL"
        recipient = _path(line)
        if recipient in self.reject_rcpt:
            return b"550 5.1.1 no such user"
        self.recipients.append(recipient)
        return b"250 2.1.5 OK"

    def data(self, _line: bytes) -> bytes:
        if not self.recipients:
            return b"554 5.5.1 no valid recipients"
        self.in_data = True
        return b"354 end with <CRLF>.<CRLF>"

    def bdat(self, line: bytes) -> bytes:
        size, _, last = line[5:].partition(b" ")
        if not size.isdigit():
            return b"501 5.5.4 BDAT needs a size"
        self.bdat_left, self.bdat_last = int(size), last.strip().upper() == b"LAST"
        return b""

    def rset(self, _line: bytes) -> bytes:
        self.sender, self.recipients, self.chunks = None, [], []
        return b"250 2.0.0 OK"


def _path(line: bytes) -> str:
    """The address between the angle brackets of ``MAIL FROM:<…>`` or ``RCPT TO:<…>``."""
    opened = line.find(b"<")
    closed = line.find(b">", opened + 1)
    return line[opened + 1 : closed].decode("utf-8", "replace") if opened != -1 and closed != -1 else ""


async def serve(
    on_message: OnMessage,
    *,
    port: int,
    pipelining: bool = True,
    chunking: bool = True,
    reject_rcpt: Collection[str] = (),
) -> asyncio.Server:
    """Listen on 127.0.0.1:``port`` in the running loop."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: PipeliningSmtpServer(
            on_message, pipelining=pipelining, chunking=chunking, reject_rcpt=reject_rcpt
        ),
        "127.0.0.1",
        port,
    )

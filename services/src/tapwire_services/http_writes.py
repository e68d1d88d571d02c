"""uvicorn's HTTP protocol with each response leaving in one socket write.

uvicorn writes a response's status line and headers, then its body, as two ``transport.write`` calls; uvloop
sends each at once, so a small response costs two ``send`` system calls and two TCP segments, each waking the
client. For the gateway's one-event Web SDK requests those writes were the largest single item of the
process's CPU profile. Here the writes a connection makes within one event-loop iteration are joined and sent
once at the end of it: the order of bytes is unchanged and nothing waits longer than the iteration. A write
that brings the held bytes past ``FLUSH_BYTES`` is sent at once, so a large or streamed response reaches the
socket (and its flow control) as before.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FLUSH_BYTES: Final = 64 * 1024


class CoalescedWrites:
    """A transport whose writes within one loop iteration leave as one; everything else is the transport's."""

    __slots__ = ("_held", "_held_bytes", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None
        self._held_bytes = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._held is None:
            self._held = [data]
            self._held_bytes = len(data)
            self._loop.call_soon(self.flush)
        else:
            self._held.append(data)
            self._held_bytes += len(data)
        if self._held_bytes >= FLUSH_BYTES:
            self.flush()

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Send what is held (a no-op when nothing is)."""
        held, self._held = self._held, None
        if held:
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (self._held_bytes if self._held else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over ``CoalescedWrites``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        writes = CoalescedWrites(transport, asyncio.get_running_loop())
        super().connection_made(cast(asyncio.Transport, writes))

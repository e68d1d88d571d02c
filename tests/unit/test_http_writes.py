"""Each response leaves in one socket write (``tapwire_services.http_writes``), with bytes, order, streaming and
closing unchanged."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI
from starlette.responses import StreamingResponse

from tapwire_core.settings import Settings
from tapwire_services.cli import server_config
from tapwire_services.http_writes import FLUSH_BYTES, CoalescedWrites


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def close(self) -> None:
        self.events.append("close")

    def abort(self) -> None:
        self.events.append("abort")

    def write_eof(self) -> None:
        self.events.append("eof")

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8080) if name == "sockname" else default


def coalesced() -> tuple[CoalescedWrites, RecordingTransport]:
    transport = RecordingTransport()
    return CoalescedWrites(cast(asyncio.Transport, transport), asyncio.get_running_loop()), transport


async def test_writes_of_one_loop_iteration_leave_as_one() -> None:
    writes, transport = coalesced()
    writes.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    writes.write(b"ok")
    assert transport.writes == []
    assert writes.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    writes.write(b"next")
    await asyncio.sleep(0)
    assert transport.writes[1:] == [b"next"]


async def test_a_large_write_is_sent_at_once_with_what_came_before() -> None:
    writes, transport = coalesced()
    writes.write(b"head")
    writes.write(b"x" * FLUSH_BYTES)
    assert transport.writes == [b"head" + b"x" * FLUSH_BYTES]
    await asyncio.sleep(0)
    assert len(transport.writes) == 1


async def test_closing_sends_what_is_held_first_and_abort_drops_it() -> None:
    writes, transport = coalesced()
    writes.write(b"last words")
    writes.close()
    assert transport.events == ["write", "close"] and transport.writes == [b"last words"]
    await asyncio.sleep(0)
    assert transport.events == ["write", "close"]
    writes, transport = coalesced()
    writes.write(b"never")
    writes.abort()
    await asyncio.sleep(0)
    assert transport.events == ["abort"]


async def test_everything_else_is_the_transports() -> None:
    writes, _ = coalesced()
    assert writes.get_extra_info("sockname") == ("127.0.0.1", 8080)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[int]:
    import uvicorn

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port: int = listening.getsockname()[1]
    server = uvicorn.Server(server_config(app, Settings(host="127.0.0.1", port=port)))
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield port
    finally:
        server.should_exit = True
        await task
        listening.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status, *lines = head[:-4].split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while size := int((await reader.readline()).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
    else:
        body = await reader.readexactly(int(headers[b"content-length"]))
    return status, headers, body


async def test_the_services_server_answers_small_and_streamed_responses_intact() -> None:
    app = FastAPI()
    chunk = bytes(range(256)) * 1024  # 256 KiB, past FLUSH_BYTES

    @app.get("/small")
    def small() -> dict[str, str]:
        return {"answer": "ok"}

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            for number in range(8):
                yield bytes([number]) + chunk

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async with serving(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in (b"/small", b"/stream", b"/small"):
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert status == b"HTTP/1.1 200 OK"
            assert b"server" not in headers
            if path == b"/small":
                assert body == b'{"answer":"ok"}'
            else:
                assert body == b"".join(bytes([number]) + chunk for number in range(8))
        writer.close()
        await writer.wait_closed()

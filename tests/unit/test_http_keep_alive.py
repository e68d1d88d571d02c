"""Idle keep-alive connections outlive a proxy's: a request sent on a connection idle for a while is answered.

uvicorn closes idle connections after 5 s by default while ingress-nginx keeps upstream connections 60 s: a
POST it forwarded on a connection the service was closing came back to the client as a 502 (the fault soak
saw the same race from its own client, whose pool keeps connections 5 s).
"""

from __future__ import annotations

import asyncio
import socket

from fastapi import FastAPI

from tapwire_core.settings import Settings
from tapwire_services.cli import server_config

INGRESS_NGINX_UPSTREAM_KEEPALIVE_S = 60


def test_services_keep_idle_connections_longer_than_the_ingress() -> None:
    config = server_config(FastAPI(), Settings())
    assert config.timeout_keep_alive > INGRESS_NGINX_UPSTREAM_KEEPALIVE_S


async def test_a_connection_idle_past_uvicorns_default_still_serves() -> None:
    import uvicorn

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port = listening.getsockname()[1]
    server = uvicorn.Server(server_config(app, Settings(host="127.0.0.1", port=port)))
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n"
        for pause_s in (0.0, 6.0):  # uvicorn's own default closes the connection after 5 s
            await asyncio.sleep(pause_s)
            writer.write(request)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.startswith(b"HTTP/1.1 200"), (pause_s, status)
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            await reader.readexactly(len(b'{"ok":true}'))
        writer.close()
    finally:
        server.should_exit = True
        await serving
        listening.close()

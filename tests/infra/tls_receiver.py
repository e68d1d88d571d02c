"""A provider's HTTPS endpoint, stood in for on 127.0.0.1: a threaded HTTP server presenting a certificate for the
provider's public host name, issued by a test CA, and a resolver that sends that one host name there (and no
other anywhere), so the code under test connects by name and verifies the certificate as it would in production."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme


class QuietHandler(BaseHTTPRequestHandler):
    """Keep-alive (HTTP/1.1), and no access log on stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts ``ca`` (and verifies host names)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@contextmanager
def https_server(handler: type[BaseHTTPRequestHandler], *, ca: trustme.CA, host: str) -> Iterator[int]:
    """Serve ``handler`` over TLS as ``host`` on 127.0.0.1 in a thread; yields the port, shut down after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def resolver_for(host: str) -> Callable[[str, int], Awaitable[list[str]]]:
    """DNS for a test: ``host`` is the local server; nothing else resolves."""

    async def resolve(name: str, port: int) -> list[str]:
        if name == host:
            return ["127.0.0.1"]
        raise OSError(f"{name} does not resolve in this test")

    return resolve

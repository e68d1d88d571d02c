"""Real local provider servers for messaging tests: an SMTP sink (aiosmtpd) and scripted HTTP receivers.

Both listen on 127.0.0.1 on a free port and run on their own threads, so the code under test talks to them
exactly as it would to a provider.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.integration.processes import free_port


@dataclass
class SmtpSink:
    """Keeps every message it accepted. ``receipts`` counts raw deliveries (a resend with the same Message-ID
    counts again); ``mailbox`` is what a mailbox provider shows: one message per Message-ID."""

    receipts: list[EmailMessage] = field(default_factory=list)
    mailbox: dict[str, EmailMessage] = field(default_factory=dict)
    reject_rcpt: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.reject_rcpt:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.receipts.append(message)
            self.mailbox.setdefault(str(message["Message-ID"]), message)
        return "250 2.0.0 queued"

    def by_recipient(self) -> dict[str, list[EmailMessage]]:
        with self.lock:
            grouped: dict[str, list[EmailMessage]] = {}
            for message in self.mailbox.values():
                grouped.setdefault(str(message["To"]), []).append(message)
            return grouped


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Received, int], tuple[int, dict[str, Any] | str]]


@dataclass
class HttpReceiver:
    """Records every request; ``respond(request, n)`` (n = 0-based index of the request) picks the answer."""

    respond: Responder
    requests: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def http_receiver(respond: Responder | None = None) -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(respond or (lambda _r, _n: (200, {"ok": True})))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = Received(
                "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            with lock:
                index = len(receiver.requests)
                receiver.requests.append(request)
            status, payload = receiver.respond(request, index)
            body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()

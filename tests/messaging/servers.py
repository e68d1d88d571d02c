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
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.integration.processes import free_port


@dataclass(frozen=True)
class SmtpEnvelope:
    """What the client said around one accepted message: its EHLO name, MAIL FROM and RCPT TO addresses."""

    helo: str
    mail_from: str
    rcpt_tos: tuple[str, ...]


@dataclass
class SmtpSink:
    """Keeps every message it accepted. ``receipts`` counts raw deliveries (a resend with the same Message-ID
    counts again); ``mailbox`` is what a mailbox provider shows: one message per Message-ID. ``envelopes`` and
    ``raw`` hold each receipt's envelope and bytes, in the order of ``receipts``."""

    receipts: list[EmailMessage] = field(default_factory=list)
    envelopes: list[SmtpEnvelope] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
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
        sent_by = SmtpEnvelope(str(session.host_name), str(envelope.mail_from), tuple(envelope.rcpt_tos))
        with self.lock:
            self.receipts.append(message)
            self.envelopes.append(sent_by)
            self.raw.append(raw)
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


Answer = tuple[int, dict[str, Any] | str] | tuple[int, dict[str, Any] | str, dict[str, str]]
"""(status, JSON payload or text) or (status, payload, extra response headers)."""
Responder = Callable[[Received, int], Answer]


@dataclass
class HttpReceiver:
    """Records every request; ``respond(request, n)`` (n = 0-based index of the request) picks the answer."""

    respond: Responder
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def http_receiver(
    respond: Responder | None = None, *, port: int = 0, host: str = "127.0.0.1"
) -> Iterator[HttpReceiver]:
    """A threaded HTTP server on ``host`` (a loopback address; ``port`` 0 picks a free one; a given port brings
    a stopped receiver back where its clients expect it)."""
    receiver = HttpReceiver(respond or (lambda _r, _n: (200, {"ok": True})), host=host)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            self._answer("POST")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = Received(
                method, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            with lock:
                index = len(receiver.requests)
                receiver.requests.append(request)
            status, payload, *more = receiver.respond(request, index)
            extra_headers: dict[str, str] = more[0] if more else {}
            # 204 and 304 carry no body.
            body = (
                b""
                if status in (204, 304)
                else payload.encode()
                if isinstance(payload, str)
                else json.dumps(payload).encode()
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class TwilioMessages:
    """A Twilio-shaped Messages resource: ``POST …/Messages.json`` stores a message and answers its SID;
    ``DELETE …/Messages/{sid}.json`` answers 204 and drops it, or 404 when it is not there. ``fail_next``
    holds statuses answered (in order) to the next requests instead, e.g. a 500 to see a retry."""

    messages: dict[str, dict[str, str]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, request: Received, _n: int) -> tuple[int, dict[str, Any] | str]:
        with self.lock:
            if self.fail_next:
                return self.fail_next.pop(0), {"code": 20500, "message": "internal error"}
            path = request.path.split("?", 1)[0]
            if request.method == "POST" and path.endswith("/Messages.json"):
                sid = f"SM{len(self.messages) + 1:032x}"
                form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
                self.messages[sid] = form
                return 201, {"sid": sid, "to": form.get("To", ""), "status": "queued"}
            if request.method == "DELETE" and "/Messages/" in path and path.endswith(".json"):
                sid = path.rsplit("/", 1)[1].removesuffix(".json")
                if self.messages.pop(sid, None) is None:
                    return 404, {"code": 20404, "message": "not found"}
                return 204, ""
            return 405, {"code": 20004, "message": "method not allowed"}

    def deletes(self, receiver: HttpReceiver) -> list[str]:
        """The SIDs of every DELETE the receiver got, in order."""
        return [
            r.path.split("?", 1)[0].rsplit("/", 1)[1].removesuffix(".json")
            for r in receiver.requests
            if r.method == "DELETE"
        ]

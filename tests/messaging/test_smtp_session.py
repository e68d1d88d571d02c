"""The SMTP client against real local servers, with and without PIPELINING (RFC 2920).

The pipelining sink (tests.messaging.pipelining_sink) offers PIPELINING like Postfix; aiosmtpd (the rig's other
sink, tests.messaging.servers) does not, so the client must wait for each reply there.
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tapwire_messaging.channels import OutboundMessage
from tapwire_messaging.channels.smtp import SmtpAdapter, SmtpConfig
from tapwire_messaging.channels.smtp_session import SmtpProtocolError, SmtpSession
from tests.integration.processes import free_port
from tests.messaging.pipelining_sink import serve
from tests.messaging.servers import SmtpSink

pytestmark = pytest.mark.integration


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    def __call__(self, recipients: list[str], content: bytes) -> None:
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(recipients), message))


@asynccontextmanager
async def pipelining_sink(
    *, pipelining: bool = True, chunking: bool = True, reject_rcpt: tuple[str, ...] = ()
) -> AsyncIterator[tuple[str, Inbox]]:
    inbox, port = Inbox(), free_port()
    server = await serve(inbox, port=port, pipelining=pipelining, chunking=chunking, reject_rcpt=reject_rcpt)
    try:
        yield f"smtp://127.0.0.1:{port}", inbox
    finally:
        server.close()


def messages(count: int) -> list[OutboundMessage]:
    # A body line that starts with a dot must survive SMTP transparency (dot-stuffing) intact.
    return [
        OutboundMessage(f"key{i}", f"user{i}@example.com", f"Hello {i}\n.signature", subject=f"Hi {i}")
        for i in range(count)
    ]


MODES = [(True, True), (True, False), (False, False)]


@pytest.mark.parametrize(("pipelining", "chunking"), MODES, ids=["bdat", "pipelined", "lockstep"])
async def test_concurrent_sends_share_sessions_and_arrive_once_intact(
    pipelining: bool, chunking: bool
) -> None:
    async with pipelining_sink(pipelining=pipelining, chunking=chunking) as (url, inbox):
        adapter = SmtpAdapter(SmtpConfig.from_url(url, pool_size=2), sender="news@shop.example")
        outgoing = messages(40)
        results = await asyncio.gather(*(adapter.send(m) for m in outgoing))
        sessions = [s for s in adapter._sessions if s is not None]
        await adapter.close()
    assert [r.outcome for r in results] == ["sent"] * 40
    assert len(sessions) == 2
    assert all((s.pipelining, s.chunking) == (pipelining, chunking) for s in sessions)
    assert sorted(to for to, _ in inbox.messages) == sorted([m.to] for m in outgoing)
    for recipients, message in inbox.messages:
        index = recipients[0].removeprefix("user").removesuffix("@example.com")
        assert message["Message-ID"] == f"<key{index}@shop.example>"
        assert message["Subject"] == f"Hi {index}"
        assert message.get_content().splitlines() == [f"Hello {index}", ".signature"]


@pytest.mark.parametrize(("pipelining", "chunking"), MODES, ids=["bdat", "pipelined", "lockstep"])
async def test_a_refused_recipient_is_rejected_and_the_session_goes_on(
    pipelining: bool, chunking: bool
) -> None:
    async with pipelining_sink(
        pipelining=pipelining, chunking=chunking, reject_rcpt=("gone@example.com",)
    ) as (url, inbox):
        adapter = SmtpAdapter(SmtpConfig.from_url(url, pool_size=1), sender="news@shop.example")
        bad, good = await asyncio.gather(
            adapter.send(OutboundMessage("k1", "gone@example.com", "x", subject="s")),
            adapter.send(OutboundMessage("k2", "ok@example.com", "x", subject="s")),
        )
        await adapter.close()
    # 550 5.1.1 to RCPT: the address does not exist, a hard bounce.
    assert bad.outcome == "unregistered" and bad.detail.startswith("550")
    assert bad.bounce is not None and (bad.bounce.kind, bad.bounce.status) == ("hard_bounce", "5.1.1")
    assert good.outcome == "sent" and good.bounce is None
    assert [to for to, _ in inbox.messages] == [["ok@example.com"]]


async def test_a_silent_server_times_out_as_a_retryable_failure() -> None:
    async def greet_then_ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 slow.test ESMTP\r\n")
        while await reader.readline() not in (b"", b"DATA\r\n"):
            line = b"250-slow.test\r\n250 PIPELINING\r\n"
            writer.write(line)
        await reader.read()

    port = free_port()
    server = await asyncio.start_server(greet_then_ignore, "127.0.0.1", port)
    try:
        config = SmtpConfig(host="127.0.0.1", port=port, pool_size=1, timeout_s=0.2)
        adapter = SmtpAdapter(config, sender="news@shop.example")
        result = await adapter.send(OutboundMessage("k", "x@example.com", "x"))
        await adapter.close()
    finally:
        server.close()
    assert result.outcome == "failed" and result.retryable
    assert "no reply" in result.detail


async def test_auth_plain_logs_in_and_a_wrong_password_is_refused() -> None:
    def authenticate(
        server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ann", b"s3cret")
        return AuthResult(success=ok, handled=False)

    sink = SmtpSink(port=free_port())
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        adapter = SmtpAdapter(
            SmtpConfig.from_url(f"smtp://ann:s3cret@127.0.0.1:{sink.port}"), sender="news@shop.example"
        )
        sent = await adapter.send(OutboundMessage("k", "x@example.com", "hello"))
        await adapter.close()
        with pytest.raises(SmtpProtocolError, match="AUTH refused"):
            await SmtpSession.open(
                "127.0.0.1", sink.port, helo_name="shop.example", username="ann", password="wrong"
            )
    finally:
        controller.stop()
    assert sent.outcome == "sent"
    assert len(sink.receipts) == 1


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for 127.0.0.1, and a client context that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


async def test_starttls_upgrades_before_login_and_sending(tmp_path: Path) -> None:
    server_context, client_context = self_signed(tmp_path)
    sink = SmtpSink(port=free_port())
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=sink.port,
        tls_context=server_context,
        require_starttls=True,
        authenticator=lambda *args: AuthResult(success=True, handled=False),
    )
    controller.start()
    try:
        session = await SmtpSession.open(
            "127.0.0.1",
            sink.port,
            helo_name="shop.example",
            starttls=True,
            username="ann",
            password="s3cret",
            ssl_context=client_context,
        )
        reply = await session.send("news@shop.example", "x@example.com", b"Subject: s\r\n\r\nhello\r\n")
        await session.quit()
        with pytest.raises(ssl.SSLCertVerificationError):
            await SmtpSession.open("127.0.0.1", sink.port, helo_name="shop.example", starttls=True)
    finally:
        controller.stop()
    assert reply.code == 250
    assert [m["Subject"] for m in sink.receipts] == ["s"]


async def test_long_non_ascii_subject_is_folded_with_crlf_only() -> None:
    subject = "Grüße und Angebote für dich, " * 6
    async with pipelining_sink() as (url, inbox):
        adapter = SmtpAdapter(SmtpConfig.from_url(url, pool_size=1), sender="news@shop.example")
        payload = adapter.build(OutboundMessage("k", "x@example.com", "body", subject=subject))
        result = await adapter.send(OutboundMessage("k", "x@example.com", "body", subject=subject))
        await adapter.close()
    # Bare LF in a message is refused by strict servers (and is how SMTP smuggling works).
    assert b"\n" not in payload.replace(b"\r\n", b"")
    assert result.outcome == "sent"
    assert inbox.messages[0][1]["Subject"] == subject


async def test_display_name_addresses_reach_the_mailbox_and_broken_ones_are_rejected() -> None:
    async with pipelining_sink() as (url, inbox):
        adapter = SmtpAdapter(SmtpConfig.from_url(url, pool_size=1), sender="news@shop.example")
        named = await adapter.send(OutboundMessage("k1", "Ann Example <ann@example.com>", "x", subject="s"))
        broken = await adapter.send(OutboundMessage("k2", "ann@example.com\r\nRCPT TO:<b@x.example>", "x"))
        await adapter.close()
    assert named.outcome == "sent"
    assert broken.outcome == "rejected" and "invalid address" in broken.detail
    assert [(to, m["To"]) for to, m in inbox.messages] == [
        (["ann@example.com"], "Ann Example <ann@example.com>")
    ]

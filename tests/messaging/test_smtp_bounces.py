"""What an SMTP refusal says about the recipient, against a real server (aiosmtpd) answering as mailbox
providers do; and the return-path token in the envelope sender, the Message-ID and the provider's header."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tapwire_messaging.channels import OutboundMessage
from tapwire_messaging.channels.smtp import SmtpAdapter, SmtpConfig
from tests.integration.processes import free_port

pytestmark = pytest.mark.integration


@dataclass
class ScriptedServer:
    """Answers ``rcpt[address]`` to RCPT and ``data[address]`` to the content; keeps what it accepted."""

    rcpt: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    accepted: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt:
            return self.rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = self.data.get(envelope.rcpt_tos[0])
        if answer is not None:
            return answer
        self.accepted.append(
            (str(envelope.mail_from), list(envelope.rcpt_tos), envelope.original_content or b"")
        )
        return "250 2.0.0 queued"


@contextmanager
def scripted(server: ScriptedServer) -> Iterator[str]:
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


async def test_refusals_are_judged_by_code_status_and_the_command_refused() -> None:
    server = ScriptedServer(
        rcpt={
            "gone@example.com": "550 5.1.1 <gone@example.com>: Recipient address rejected",
            "unknown@example.com": "550 Requested action not taken: mailbox unavailable",
            "full@example.com": "452 4.2.2 Mailbox full",
            "busy@example.com": "421 4.7.0 Try again later",
            "blocked@example.com": "554 5.7.1 Service unavailable; client host blocked",
        },
        data={"spam@example.com": "554 5.6.0 Message content rejected"},
    )
    with scripted(server) as url:
        adapter = SmtpAdapter(SmtpConfig.from_url(url, pool_size=1), sender="news@shop.example")
        try:
            results = {
                to: await adapter.send(OutboundMessage(f"k{n}", to, "x", subject="s"))
                for n, to in enumerate([*server.rcpt, *server.data, "ok@example.com"])
            }
        finally:
            await adapter.close()
    judged = {
        to: (r.outcome, None if r.bounce is None else (r.bounce.kind, r.bounce.category))
        for to, r in results.items()
    }
    assert judged == {
        "gone@example.com": ("unregistered", ("hard_bounce", "bad-mailbox")),
        "unknown@example.com": ("unregistered", ("hard_bounce", "bad-mailbox")),
        "full@example.com": ("failed", ("soft_bounce", "mailbox-full")),
        "busy@example.com": (
            "failed",
            None,
        ),  # the relay's own trouble: retried, never held against the address
        "blocked@example.com": ("rejected", ("block", "policy")),
        "spam@example.com": ("rejected", ("block", "content")),
        "ok@example.com": ("sent", None),
    }


@pytest.mark.parametrize(
    ("provider", "header", "expected"),
    [
        ("smtp", None, None),
        ("ses", "X-SES-MESSAGE-TAGS", "tapwire={token}"),
        ("sendgrid", "X-SMTPAPI", '{{"unique_args": {{"tapwire": "{token}"}}}}'),
        ("postmark", "X-PM-Metadata-tapwire", "{token}"),
        ("mailgun", "X-Mailgun-Variables", '{{"tapwire": "{token}"}}'),
    ],
)
async def test_the_token_rides_in_the_envelope_sender_message_id_and_provider_header(
    provider: str, header: str | None, expected: str | None
) -> None:
    server = ScriptedServer()
    token = "tw1f4-a1b2c3d4e5f6"
    with scripted(server) as url:
        adapter = SmtpAdapter(
            SmtpConfig.from_url(url, pool_size=1), sender="Shop <news@shop.example>", provider=provider
        )
        try:
            message = OutboundMessage(
                "k1",
                "ann@example.com",
                "x",
                subject="s",
                feedback_token=token,
                return_path=f"bounces+{token}@bounce.shop.example",
            )
            result = await adapter.send(message)
        finally:
            await adapter.close()
    assert result.outcome == "sent" and result.provider_id == f"<k1.{token}@shop.example>"
    ((mail_from, _, raw),) = server.accepted
    assert mail_from == f"bounces+{token}@bounce.shop.example"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Message-ID"] == f"<k1.{token}@shop.example>"
    assert parsed["From"] == "Shop <news@shop.example>"
    if header is None:
        assert not any(
            name.lower().startswith(("x-ses", "x-smtpapi", "x-pm-", "x-mailgun")) for name in parsed
        )
    else:
        assert expected is not None and parsed[header] == expected.format(token=token)

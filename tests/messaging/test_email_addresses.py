"""Sender and recipient mailboxes over SMTP: display names, envelopes, RFC 2047, and the shipped configuration."""

from __future__ import annotations

import email.headerregistry
import os

import pytest

from tapwire_core.settings import Settings
from tapwire_messaging.channels import OutboundMessage, build_providers
from tapwire_messaging.channels.mailbox import Mailbox
from tapwire_messaging.channels.smtp import SmtpAdapter, SmtpConfig
from tests.deploy.manifests import OVERLAYS, config_env, rendered
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration


def _mailbox(header: object) -> tuple[str, str]:
    assert isinstance(header, email.headerregistry.AddressHeader)
    (address,) = header.addresses
    return address.display_name, address.addr_spec


async def test_a_display_name_sender_keeps_its_address_for_the_envelope_helo_and_message_ids() -> None:
    with smtp_sink() as sink:
        adapter = SmtpAdapter(
            SmtpConfig.from_url(sink.url, pool_size=1), sender="Shop News <news@shop.example>"
        )
        result = await adapter.send(OutboundMessage("key-1", "ann@example.com", "Hello", subject="Hi"))
        await adapter.close()
    assert result.outcome == "sent", result.detail
    (envelope,) = sink.envelopes
    assert envelope.mail_from == "news@shop.example"
    assert envelope.rcpt_tos == ("ann@example.com",)
    assert envelope.helo == "shop.example"
    (mail,) = sink.receipts
    assert _mailbox(mail["From"]) == ("Shop News", "news@shop.example")
    assert mail["Message-ID"] == "<key-1@shop.example>"


async def test_non_ascii_display_names_are_encoded_on_the_name_only() -> None:
    with smtp_sink() as sink:
        adapter = SmtpAdapter(
            SmtpConfig.from_url(sink.url, pool_size=1), sender="Café Ångström <news@shop.example>"
        )
        result = await adapter.send(
            OutboundMessage("key-2", "Zoë Ünal <zoe@example.com>", "Hello", subject="Grüße")
        )
        await adapter.close()
    assert result.outcome == "sent", result.detail
    (envelope,) = sink.envelopes
    assert envelope.rcpt_tos == ("zoe@example.com",)
    (mail,) = sink.receipts
    assert _mailbox(mail["To"]) == ("Zoë Ünal", "zoe@example.com")
    assert _mailbox(mail["From"]) == ("Café Ångström", "news@shop.example")
    assert str(mail["Subject"]) == "Grüße"
    raw_headers = sink.raw[0].split(b"\r\n\r\n", 1)[0].decode("ascii")
    to_line = next(line for line in raw_headers.split("\r\n") if line.startswith("To: "))
    from_line = next(line for line in raw_headers.split("\r\n") if line.startswith("From: "))
    # The address stays outside the encoded word, where every mail client reads it.
    assert to_line.startswith("To: =?utf-8?") and to_line.endswith("?= <zoe@example.com>")
    assert from_line.startswith("From: =?utf-8?") and from_line.endswith("?= <news@shop.example>")


async def test_an_ascii_display_name_with_specials_is_quoted() -> None:
    with smtp_sink() as sink:
        adapter = SmtpAdapter(SmtpConfig.from_url(sink.url, pool_size=1), sender="news@shop.example")
        result = await adapter.send(
            OutboundMessage("key-3", '"Doe, Ann" <ann@example.com>', "x", subject="s")
        )
        await adapter.close()
    assert result.outcome == "sent", result.detail
    assert sink.envelopes[0].rcpt_tos == ("ann@example.com",)
    assert _mailbox(sink.receipts[0]["To"]) == ("Doe, Ann", "ann@example.com")


@pytest.mark.parametrize(
    "to",
    [
        "ann@example.com, bob@example.com",
        "no address",
        "Ann <>",
        "ann@example.com\r\nBcc: x@y.example",
        "zoë@example.com",
    ],
)
async def test_unusable_recipients_are_rejected_without_a_transaction(to: str) -> None:
    with smtp_sink() as sink:
        adapter = SmtpAdapter(SmtpConfig.from_url(sink.url, pool_size=1), sender="news@shop.example")
        result = await adapter.send(OutboundMessage("k", to, "x", subject="s"))
        await adapter.close()
    assert result.outcome == "rejected" and result.detail.startswith("invalid address")
    assert sink.receipts == []


def test_an_internationalised_domain_travels_in_its_idna_form() -> None:
    adapter = SmtpAdapter(SmtpConfig("127.0.0.1", 25), sender="news@bücher.example")
    assert adapter.sender == Mailbox("news@xn--bcher-kva.example")


@pytest.mark.parametrize("sender", ["tapwire <no-reply>", "a@b.example, c@d.example", "<>", " "])
def test_a_malformed_email_from_stops_the_service_at_start(sender: str) -> None:
    settings = Settings(smtp_url="smtp://127.0.0.1:25", email_from=sender)
    with pytest.raises(ValueError, match="TAPWIRE_EMAIL_FROM"):
        build_providers(settings)


@pytest.mark.parametrize("overlay", OVERLAYS)
async def test_the_shipped_kubernetes_configuration_sends_email(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The messaging container's environment as the overlay renders it, with the SMTP URL (a Secret) pointed
    at the sink: the configured ``email-from`` must produce deliverable mail."""
    o = rendered(overlay)
    deployment = o.get("Deployment", "tapwire-messaging")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = config_env(o, container)
    assert "TAPWIRE_EMAIL_FROM" in env, "the shipped configuration names no sender"
    sender = Mailbox.parse(env["TAPWIRE_EMAIL_FROM"])
    with smtp_sink() as sink:
        for name in [n for n in os.environ if n.startswith("TAPWIRE_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("TAPWIRE_SMTP_URL", sink.url)
        providers = build_providers(Settings())
        assert providers.email is not None
        result = await providers.email.send(
            OutboundMessage("shipped-1", "Ann <ann@example.com>", "Hello", subject="Welcome")
        )
        await providers.close()
    assert result.outcome == "sent", result.detail
    (envelope,) = sink.envelopes
    assert envelope.mail_from == sender.address
    assert envelope.helo == sender.domain
    (mail,) = sink.receipts
    assert _mailbox(mail["From"]) == (sender.display_name, sender.address)
    assert mail["Message-ID"] == f"<shipped-1@{sender.domain}>"

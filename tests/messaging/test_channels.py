"""Provider adapters against real local servers: SMTP sink, webhook and Twilio-shaped receivers (push: see
test_push_providers.py)."""

from __future__ import annotations

import asyncio
import random
from urllib.parse import parse_qs

import pytest

from tapwire_core.egress import EgressPolicy
from tapwire_messaging.channels import OutboundMessage
from tapwire_messaging.channels.http_retry import RetryPolicy
from tapwire_messaging.channels.sms import TwilioSmsAdapter
from tapwire_messaging.channels.smtp import SmtpAdapter, SmtpConfig
from tapwire_messaging.channels.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookAdapter,
    verify_signature,
)
from tests.messaging.servers import Received, http_receiver, smtp_sink

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05)
# The receivers listen on loopback, which customers' webhooks may reach only through the operator's allow-list.
LOOPBACK = EgressPolicy.parse("127.0.0.1/32")


def test_smtp_url_forms() -> None:
    config = SmtpConfig.from_url("smtp://ann%40x:p%3Ass@mail.example:2525?starttls=true&pool=3")
    assert (config.host, config.port, config.username, config.password) == (
        "mail.example",
        2525,
        "ann@x",
        "p:ss",
    )
    assert config.starttls and not config.implicit_tls and config.pool_size == 3
    assert SmtpConfig.from_url("smtps://mail.example").port == 465
    with pytest.raises(ValueError, match="smtp://"):
        SmtpConfig.from_url("http://mail.example")


async def test_smtp_delivers_with_unsubscribe_headers_and_stable_message_id() -> None:
    with smtp_sink() as sink:
        adapter = SmtpAdapter(SmtpConfig.from_url(sink.url, pool_size=2), sender="news@shop.example")
        headers = {
            "List-Unsubscribe": "<https://t.example/u/abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        messages = [
            OutboundMessage(f"key{i}", f"user{i}@example.com", f"Hello {i}", subject="Hi", headers=headers)
            for i in range(5)
        ]
        results = await asyncio.gather(*(adapter.send(m) for m in messages))
        await adapter.close()
    assert [r.outcome for r in results] == ["sent"] * 5
    received = sink.by_recipient()
    assert sorted(received) == sorted(m.to for m in messages)
    mail = received["user3@example.com"][0]
    assert mail["List-Unsubscribe"] == "<https://t.example/u/abc>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Message-ID"] == "<key3@shop.example>"
    assert mail.get_content().strip() == "Hello 3"


async def test_smtp_refused_recipient_is_rejected_and_connection_reused() -> None:
    with smtp_sink() as sink:
        sink.reject_rcpt.add("gone@example.com")
        adapter = SmtpAdapter(SmtpConfig.from_url(sink.url, pool_size=1), sender="news@shop.example")
        bad = await adapter.send(OutboundMessage("k1", "gone@example.com", "x", subject="s"))
        good = await adapter.send(OutboundMessage("k2", "ok@example.com", "x", subject="s"))
        await adapter.close()
    assert bad.outcome == "unregistered" and "550" in bad.detail
    assert bad.bounce is not None and bad.bounce.kind == "hard_bounce"
    assert good.outcome == "sent"
    assert len(sink.receipts) == 1


async def test_smtp_unreachable_server_is_a_retryable_failure() -> None:
    from tests.integration.processes import free_port

    adapter = SmtpAdapter(SmtpConfig.from_url(f"smtp://127.0.0.1:{free_port()}"), sender="a@b.example")
    result = await adapter.send(OutboundMessage("k", "x@example.com", "x"))
    await adapter.close()
    assert result.outcome == "failed" and result.retryable


async def test_webhook_signature_verifies_with_the_shared_secret() -> None:
    with http_receiver() as receiver:
        adapter = WebhookAdapter(policy=FAST, egress=LOOPBACK)
        result = await adapter.send(
            OutboundMessage("key-1", f"{receiver.url}/hook", "", data={"user": "i:ann"}, secret="s3cret")
        )
        await adapter.close()
    assert result.outcome == "sent"
    (request,) = receiver.requests
    assert request.json() == {"user": "i:ann"}
    assert request.headers["idempotency-key"] == "key-1"
    signature = request.headers[SIGNATURE_HEADER.lower()]
    timestamp = request.headers[TIMESTAMP_HEADER.lower()]
    assert verify_signature("s3cret", timestamp=timestamp, body=request.body, signature=signature)
    assert not verify_signature("other", timestamp=timestamp, body=request.body, signature=signature)
    assert not verify_signature("s3cret", timestamp=timestamp, body=request.body + b" ", signature=signature)


async def test_webhook_retries_500_until_200_and_delivers_once() -> None:
    def respond(_: Received, n: int) -> tuple[int, dict[str, object]]:
        return (500, {"error": "busy"}) if n == 0 else (200, {"ok": True})

    with http_receiver(respond) as receiver:
        adapter = WebhookAdapter(policy=FAST, rng=random.Random(1), egress=LOOPBACK)
        result = await adapter.send(OutboundMessage("k", receiver.url, "", data={"a": 1}, secret="s"))
        await adapter.close()
    assert result.outcome == "sent"
    statuses = [respond(r, i)[0] for i, r in enumerate(receiver.requests)]
    assert statuses == [500, 200]
    assert len({r.headers["idempotency-key"] for r in receiver.requests}) == 1


async def test_webhook_does_not_retry_a_400() -> None:
    with http_receiver(lambda _r, _n: (400, {"error": "bad"})) as receiver:
        adapter = WebhookAdapter(policy=FAST, egress=LOOPBACK)
        result = await adapter.send(OutboundMessage("k", receiver.url, "", data={}, secret="s"))
        await adapter.close()
    assert result.outcome == "rejected"
    assert len(receiver.requests) == 1


async def test_webhook_gives_up_after_the_policy_and_reports_failure() -> None:
    delays: list[float] = []

    async def no_sleep(seconds: float) -> None:
        delays.append(seconds)

    with http_receiver(lambda _r, _n: (503, {})) as receiver:
        adapter = WebhookAdapter(
            policy=RetryPolicy(attempts=3, base_delay_s=1, max_delay_s=8), sleep=no_sleep, egress=LOOPBACK
        )
        result = await adapter.send(OutboundMessage("k", receiver.url, "", data={}, secret="s"))
        await adapter.close()
    assert result.outcome == "failed"
    assert len(receiver.requests) == 3
    assert len(delays) == 2 and 0 <= delays[0] <= 1 and 0 <= delays[1] <= 2


async def test_webhook_to_an_internal_address_is_rejected_without_a_request_or_a_retry() -> None:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["169.254.169.254"] if host == "meta.customer.example" else ["127.0.0.1"]

    with http_receiver() as receiver:
        adapter = WebhookAdapter(policy=FAST, resolver=resolve)
        urls = ("http://meta.customer.example/hook", f"http://hooks.customer.example:{receiver.port}/hook")
        results = [
            await adapter.send(OutboundMessage("k", url, "", data={}, secret="s" * 16)) for url in urls
        ]
        await adapter.close()
    assert [r.outcome for r in results] == ["rejected", "rejected"]
    assert "169.254.169.254 is link-local (cloud metadata)" in results[0].detail
    assert "127.0.0.1 is loopback" in results[1].detail
    assert asked == ["meta.customer.example", "hooks.customer.example"]
    assert receiver.requests == []


async def test_twilio_shaped_sms() -> None:
    def respond(request: Received, _n: int) -> tuple[int, dict[str, object]]:
        form = parse_qs(request.body.decode())
        if form["To"] == ["+15550000"]:
            return 400, {"code": 21610, "message": "unsubscribed recipient"}
        return 201, {"sid": "SM1"}

    with http_receiver(respond) as receiver:
        url = (
            f"http://AC1:tok@127.0.0.1:{receiver.port}/2010-04-01/Accounts/AC1/Messages.json?From=%2B15551111"
        )
        sms = TwilioSmsAdapter(url, policy=FAST)
        ok = await sms.send(OutboundMessage("k", "+15552222", "Hi"))
        gone = await sms.send(OutboundMessage("k2", "+15550000", "Hi"))
        await sms.close()
    assert (ok.outcome, ok.provider_id) == ("sent", "SM1")
    assert gone.outcome == "unregistered"
    first = receiver.requests[0]
    assert parse_qs(first.body.decode()) == {"To": ["+15552222"], "From": ["+15551111"], "Body": ["Hi"]}
    assert first.headers["authorization"].startswith("Basic ")

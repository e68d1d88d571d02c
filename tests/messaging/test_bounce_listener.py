"""The bounce mailbox's limits, over real SMTP: recipients other than its own refused, messages over the cap
refused, connections past the limit told to come back later."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tapwire_core.control.email_feedback import SoftBouncePolicy
from tapwire_messaging.email_feedback.intake import FeedbackIntake
from tapwire_messaging.email_feedback.listener import BounceListener, BounceMailbox
from tapwire_messaging.email_feedback.mailbox import MAX_MESSAGE_BYTES
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens
from tapwire_messaging.feedback import FeedbackPublisher

TOKENS = ReturnPathTokens(b"listener-secret")


@pytest.fixture
async def listener() -> AsyncIterator[BounceListener]:
    engine = create_async_engine("sqlite+aiosqlite://")
    intake = FeedbackIntake(
        engine=engine,
        publisher=FeedbackPublisher(None, "unused"),
        policy=SoftBouncePolicy(),
        now_ms=lambda: 0,
    )
    mailbox = BounceMailbox(bounce_address="bounces@bounce.shop.example", tokens=TOKENS, intake=intake)
    server = BounceListener(
        mailbox, host="127.0.0.1", port=0, hostname="bounce.shop.example", max_connections=2
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close()
        await engine.dispose()


async def test_only_the_bounce_address_and_its_valid_verp_forms_are_taken(listener: BounceListener) -> None:
    def rcpt() -> dict[str, int]:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
            client.ehlo("mx.example")
            client.mail("<>")
            verp = TOKENS.verp_address("bounces@bounce.shop.example", 42)
            return {
                address: client.rcpt(address)[0]
                for address in (
                    "bounces@bounce.shop.example",
                    verp.upper(),
                    "BOUNCES+tw2a-000000000000@bounce.shop.example",
                    "postmaster@bounce.shop.example",
                    "bounces@elsewhere.example",
                    "ann@example.com",
                )
            }

    codes = await asyncio.to_thread(rcpt)
    assert list(codes.values()) == [250, 250, 550, 550, 550, 550]


async def test_a_message_over_the_cap_is_refused(listener: BounceListener) -> None:
    def send() -> BaseException | None:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=30) as client:
            try:
                client.sendmail(
                    "",
                    ["bounces@bounce.shop.example"],
                    b"Subject: x\r\n\r\n" + b"a" * (MAX_MESSAGE_BYTES + 10),
                )
            except smtplib.SMTPException as exc:
                return exc
        return None

    refused = await asyncio.to_thread(send)
    assert isinstance(refused, smtplib.SMTPSenderRefused | smtplib.SMTPDataError)
    assert refused.smtp_code == 552


async def test_connections_past_the_limit_are_told_to_retry(listener: BounceListener) -> None:
    streams = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(2)]
    greetings = [await reader.readline() for reader, _ in streams]
    assert all(g.startswith(b"220") for g in greetings)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    assert (await reader.readline()).startswith(b"421")
    assert await reader.read() == b""  # and closed
    writer.close()
    for _, open_writer in streams:
        open_writer.close()
        await open_writer.wait_closed()
    for _ in range(50):
        if listener.connections == 0:
            break
        await asyncio.sleep(0.05)
    assert listener.connections == 0
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    assert (await reader.readline()).startswith(b"220")
    writer.close()

"""Reading bounce and complaint reports: SMTP replies, DSNs, ARF reports, return-path tokens."""

from __future__ import annotations

import pytest

from tapwire_messaging.email_feedback.classify import Bounce, classify_reply, classify_status
from tapwire_messaging.email_feedback.mailbox import notices_from_message
from tapwire_messaging.email_feedback.notices import scrubbed
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens
from tests.messaging.email_reports import arf, dsn

TOKENS = ReturnPathTokens(b"secret-one")


@pytest.mark.parametrize(
    ("code", "text", "command", "expected"),
    [
        (550, "5.1.1 no such user", "RCPT", Bounce("hard_bounce", "bad-mailbox", "5.1.1")),
        (
            550,
            "Requested action not taken: mailbox unavailable",
            "RCPT",
            Bounce("hard_bounce", "bad-mailbox"),
        ),
        (550, "5.2.1 mailbox disabled", "RCPT", Bounce("hard_bounce", "mailbox-disabled", "5.2.1")),
        (552, "5.2.2 mailbox full", "RCPT", Bounce("soft_bounce", "mailbox-full", "5.2.2")),
        (554, "5.7.1 rejected by policy: listed at a blocklist", "RCPT", Bounce("block", "policy", "5.7.1")),
        (550, "5.4.4 unable to route", "RCPT", Bounce("hard_bounce", "bad-domain", "5.4.4")),
        (554, "5.6.0 message content rejected", "DATA", Bounce("block", "content", "5.6.0")),
        (554, "transaction failed", "DATA", Bounce("block", "rejected-message")),
        (550, "sender rejected", "MAIL", Bounce("block", "rejected-message")),
        (452, "4.2.2 mailbox over quota", "RCPT", Bounce("soft_bounce", "mailbox-full", "4.2.2")),
        # A relay's own trouble says nothing about the recipient.
        (421, "4.7.0 try again later", "RCPT", None),
        (451, "4.3.0 local error", "DATA", None),
        (450, "greylisted", "RCPT", None),
        (250, "2.0.0 ok", "DATA", None),
    ],
)
def test_smtp_replies_are_judged_by_code_status_and_command(
    code: int, text: str, command: str, expected: Bounce | None
) -> None:
    assert classify_reply(code, text, command=command) == expected  # type: ignore[arg-type]


def test_a_permanent_status_without_a_subject_is_hard_only_at_the_recipient() -> None:
    assert classify_status("5.0.0").kind == "hard_bounce"
    assert classify_status("5.0.0", at_recipient=False).kind == "block"
    assert classify_status("4.4.7").category == "expired"


def test_tokens_name_their_row_and_refuse_a_forged_mac() -> None:
    token = TOKENS.token(4660)
    assert token.startswith("tw1234-")
    assert TOKENS.row_id(f"<abc.{token}@shop.example>") == 4660
    assert TOKENS.row_id(token.upper()) == 4660  # an MTA that folds case keeps the token
    assert ReturnPathTokens(b"secret-two").row_id(token) is None
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert TOKENS.row_id(forged) is None
    assert TOKENS.row_id("tw1235-" + token.split("-")[1]) is None
    assert TOKENS.verp_address("bounces@bounce.shop.example", 4660) == f"bounces+{token}@bounce.shop.example"


def test_a_hard_bounce_dsn_names_the_message_from_its_envelope_recipient() -> None:
    verp = TOKENS.verp_address("bounces@bounce.shop.example", 77)
    raw = dsn(to=verp, recipient="ann@example.com", message_id="<unrelated@shop.example>")
    (notice,) = notices_from_message(raw, tokens=TOKENS, envelope_recipients=[verp])
    assert notice.kind == "hard_bounce"
    assert notice.source == "dsn"
    assert notice.row_id == 77
    assert notice.recipient == "ann@example.com"
    assert notice.status == "5.1.1"
    assert notice.category == "bad-mailbox"
    assert notice.detail is not None and "ann@example.com" not in notice.detail
    assert "<recipient>" in notice.detail


def test_a_dsn_without_the_envelope_names_the_message_by_its_message_id() -> None:
    message_id = f"<k.{TOKENS.token(78)}@shop.example>"
    for headers_only in (True, False):
        raw = dsn(
            to="bounces@bounce.shop.example",
            recipient="bob@example.com",
            message_id=message_id,
            headers_only=headers_only,
        )
        (notice,) = notices_from_message(raw, tokens=TOKENS)
        assert notice.row_id == 78


def test_dsn_actions_and_statuses() -> None:
    message_id = f"<k.{TOKENS.token(9)}@shop.example>"

    def judged(
        action: str = "failed", status: str = "5.1.1", diagnostic: str | None = None
    ) -> list[tuple[str, str]]:
        raw = dsn(
            to="b@x.example",
            recipient="c@example.com",
            message_id=message_id,
            action=action,
            status=status,
            diagnostic=diagnostic,
        )
        return [(n.kind, n.category) for n in notices_from_message(raw, tokens=TOKENS)]

    assert judged(status="4.2.2", diagnostic="smtp; 452 4.2.2 over quota") == [
        ("soft_bounce", "mailbox-full")
    ]
    assert judged(status="4.4.7", diagnostic="delivery time expired") == [("soft_bounce", "expired")]
    assert judged(status="5.7.1", diagnostic="smtp; 554 5.7.1 spam") == [("block", "policy")]
    assert judged(action="delayed", status="4.4.1") == []
    assert judged(action="delivered", status="2.0.0") == [("delivered", "delivered")]


def test_one_dsn_read_twice_gives_the_same_notice_id_and_two_dsns_different_ones() -> None:
    first = dsn(to="b@x.example", recipient="c@example.com", message_id="<m@x>", report_id="<r1@mx>")
    again = dsn(to="b@x.example", recipient="c@example.com", message_id="<m@x>", report_id="<r1@mx>")
    other = dsn(to="b@x.example", recipient="c@example.com", message_id="<m@x>", report_id="<r2@mx>")
    ids = [notices_from_message(raw, tokens=TOKENS)[0].notice_id for raw in (first, again, other)]
    assert ids[0] == ids[1] != ids[2]


def test_an_arf_abuse_report_is_a_complaint_about_the_quoted_message() -> None:
    message_id = f"<k.{TOKENS.token(501)}@shop.example>"
    raw = arf(to="bounces@bounce.shop.example", recipient="ann@example.com", message_id=message_id)
    (notice,) = notices_from_message(raw, tokens=TOKENS, envelope_recipients=["bounces@bounce.shop.example"])
    assert (notice.kind, notice.source, notice.category) == ("complaint", "arf", "abuse")
    assert notice.row_id == 501
    assert notice.recipient == "ann@example.com"


def test_arf_names_the_message_by_its_original_envelope_sender_too() -> None:
    verp = TOKENS.verp_address("bounces@bounce.shop.example", 502)
    raw = arf(to="fbl@bounce.shop.example", recipient="ann@example.com", message_id="<x@y>", mail_from=verp)
    assert [n.row_id for n in notices_from_message(raw, tokens=TOKENS)] == [502]


@pytest.mark.parametrize("feedback_type", ["not-spam", "auth-failure"])
def test_arf_reports_that_are_no_complaint_yield_nothing(feedback_type: str) -> None:
    raw = arf(to="b@x.example", recipient="a@example.com", message_id="<m@x>", feedback_type=feedback_type)
    assert notices_from_message(raw, tokens=TOKENS) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"From: ann@example.com\r\nSubject: Out of office\r\n\r\nI am away until Monday.\r\n",
        b"",
        b"\x00\xff garbage \r\n\r\n",
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="X"\r\n\r\n--X--\r\n',
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="X"\r\n\r\n'
        b"--X\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n\r\n--X--\r\n",
    ],
)
def test_messages_that_are_no_report_yield_nothing(raw: bytes) -> None:
    assert notices_from_message(raw, tokens=TOKENS) == []


def test_deeply_nested_and_huge_reports_are_read_in_bounded_work() -> None:
    depth = 5000
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (i, i) for i in range(depth)
    )
    raw = b'Content-Type: multipart/report; report-type=delivery-status; boundary="X"\r\n\r\n--X\r\n' + nested
    assert notices_from_message(raw, tokens=TOKENS) == []
    many = dsn(to="b@x.example", recipient="c@example.com", message_id="<m@x>").replace(
        b"Final-Recipient", b"X-Pad: " + b"a" * 1_000_000 + b"\r\nFinal-Recipient", 1
    )
    assert len(notices_from_message(many, tokens=TOKENS)) == 1


def test_details_lose_every_address() -> None:
    text = scrubbed("550 5.1.1 <ann@example.com>: unknown; forwarded to bob@other.example", "ann@example.com")
    assert text == "550 5.1.1 <<recipient>>: unknown; forwarded to <address>"

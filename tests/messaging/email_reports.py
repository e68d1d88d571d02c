"""Bounce and complaint reports as real MTAs and feedback loops write them, for the tests to deliver."""

from __future__ import annotations


def dsn(
    *,
    to: str,
    recipient: str,
    message_id: str,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str | None = None,
    report_id: str = "<dsn-1@mx.example>",
    headers_only: bool = True,
) -> bytes:
    """A Postfix-style RFC 3464 report about one recipient of the message ``message_id``."""
    diagnostic = diagnostic or f"smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown"
    original_type = "text/rfc822-headers" if headers_only else "message/rfc822"
    original = (
        f"From: News <news@shop.example>\r\nTo: {recipient}\r\nSubject: Spring sale\r\n"
        f"Message-ID: {message_id}\r\n"
    )
    if not headers_only:
        original += "\r\nHello, the sale starts today.\r\n"
    return (
        "From: MAILER-DAEMON@mx.example (Mail Delivery System)\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {report_id}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0"\r\n'
        "\r\n"
        "--B0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx.example. Your message could not be delivered.\r\n"
        "--B0\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\nArrival-Date: Mon,  7 Dec 2026 10:00:00 +0000 (UTC)\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: {diagnostic}\r\n\r\n"
        f"--B0\r\nContent-Type: {original_type}\r\n\r\n{original}\r\n"
        "--B0--\r\n"
    ).encode()


def arf(
    *,
    to: str,
    recipient: str,
    message_id: str,
    mail_from: str = "news@shop.example",
    feedback_type: str = "abuse",
    report_id: str = "<arf-1@fbl.isp.example>",
) -> bytes:
    """An RFC 5965 abuse report about the message ``message_id``, as a mailbox provider's feedback loop sends."""
    return (
        "From: Feedback Loop <fbl@isp.example>\r\n"
        f"To: {to}\r\n"
        "Subject: FW: Spring sale\r\n"
        f"Message-ID: {report_id}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="C0"\r\n'
        "\r\n"
        "--C0\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report for an email message.\r\n"
        "--C0\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{mail_from}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n"
        "Arrival-Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nSource-IP: 192.0.2.1\r\n\r\n"
        "--C0\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: News <news@shop.example>\r\nTo: {recipient}\r\nSubject: Spring sale\r\n"
        f"Message-ID: {message_id}\r\n\r\nHello, the sale starts today.\r\n"
        "--C0--\r\n"
    ).encode()

"""Messaging's events are queryable like any event: the embedded suite (``tapwire up``) sends a campaign, its
recipients open, click, unsubscribe, bounce and get delivered (through the real links and the report intake),
and CQL and native conditions over the query API find exactly the right people by campaign id."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import TapwireProcess
from tests.messaging.email_reports import dsn
from tests.messaging.servers import SmtpSink, smtp_sink

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-FBQ-0001", "passcode-feedback-0123456789"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
INTAKE_TOKEN = "intake-token-0123456789"
USERS = ("ann", "bob", "cat", "dan", "eve")


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[tuple[TapwireProcess, SmtpSink]]:
    with smtp_sink() as sink:
        proc = TapwireProcess(
            ["up"],
            env={
                "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
                "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-feedback-0123456789",
                "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
                "TAPWIRE_SMTP_URL": sink.url,
                "TAPWIRE_EMAIL_FROM": "Shop <news@shop.example>",
                "TAPWIRE_MESSAGING_SECRET": "feedback-secret-0123456789",
                "TAPWIRE_BOUNCE_INTAKE_TOKEN": INTAKE_TOKEN,
                "TAPWIRE_MESSAGING_POLL_S": "0.05",
            },
            log_path=tmp_path / "tapwire.log",
        )
        proc.env["TAPWIRE_PUBLIC_URL"] = proc.url
        proc.start()
        try:
            proc.wait_ready()
            yield proc, sink
        finally:
            proc.kill()


def call(method: str, url: str, **kwargs: Any) -> Any:
    response = httpx.request(method, url, headers=HEADERS, timeout=30, **kwargs)
    assert response.status_code == 200, f"{method} {url}: {response.status_code} {response.text}"
    return response.json()


def users(url: str, query: dict[str, Any]) -> set[str]:
    """The identities of the users matching ``query``, through the profile export's cursor protocol."""
    found: list[dict[str, Any]] = []
    cursor = call("POST", f"{url}/1/profiles.json?batch_size=100", json=query)["cursor"]
    while cursor:
        page = call("GET", f"{url}/1/profiles.json?cursor={cursor}")
        found += page["records"]
        cursor = page.get("next_cursor")
    return {str(r["identity"]) for r in found}


def wait_for(url: str, query: dict[str, Any], expected: set[str], timeout_s: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = users(url, query)
        if seen == expected:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"{query} found {seen}, not {expected}")


def test_delivered_opened_clicked_bounced_and_unsubscribed_are_segments(
    suite: tuple[TapwireProcess, SmtpSink],
) -> None:
    proc, sink = suite
    url = proc.url
    today = int(datetime.now(UTC).strftime("%Y%m%d"))
    now = int(time.time())
    profiles = [
        {"type": "profile", "identity": u, "ts": now, "profileData": {"Email": f"{u}@example.com"}}
        for u in USERS
    ]
    assert call("POST", f"{url}/1/upload", json={"d": profiles})["processed"] == len(USERS)
    wait_for(
        url,
        {"common_profile_properties": {"profile_fields": [{"name": "Email", "operator": "exists"}]}},
        set(USERS),
    )

    campaign = {
        "name": "Spring",
        "target_mode": "email",
        "where": {},
        "content": {
            "subject": "Spring sale",
            "body": "Sale",
            "html": '<p><a href="https://shop.example/sale">Sale</a></p>',
        },
    }
    campaign_id = call("POST", f"{url}/1/targets/create.json", json=campaign)["id"]
    deadline = time.monotonic() + 60
    while len(sink.receipts) < len(USERS) and time.monotonic() < deadline:
        time.sleep(0.1)
    mail = {str(m["To"]): m for m in sink.receipts}
    assert sorted(mail) == [f"{u}@example.com" for u in USERS]

    def links(user: str) -> tuple[str, str, str, str]:
        message = mail[f"{user}@example.com"]
        html_part = message.get_body(preferencelist=("html",))
        assert html_part is not None
        html = html_part.get_content()
        click = re.search(r'href="([^"]+/m/c/[^"]+)"', html)
        pixel = re.search(r'src="([^"]+/m/o/[^"]+)"', html)
        unsubscribe = str(message["List-Unsubscribe"]).strip("<>")
        assert click and pixel
        return click.group(1), pixel.group(1), unsubscribe, str(message["Message-ID"])

    ann_click, ann_pixel, _, _ = links("ann")
    assert httpx.get(ann_pixel).status_code == 200
    assert httpx.get(ann_click).status_code == 302
    _, bob_pixel, _, _ = links("bob")
    assert httpx.get(bob_pixel).status_code == 200
    _, _, cat_unsubscribe, _ = links("cat")
    assert httpx.post(cat_unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    intake = {"Authorization": f"Bearer {INTAKE_TOKEN}", "Content-Type": "message/rfc822"}
    for user, action, status, report in (
        ("dan", "failed", "5.1.1", "<r-dan@mx>"),
        ("eve", "delivered", "2.0.0", "<r-eve@mx>"),
    ):
        body = dsn(
            to="bounces@shop.example",
            recipient=f"{user}@example.com",
            message_id=links(user)[3],
            action=action,
            status=status,
            report_id=report,
        )
        answer = httpx.post(f"{url}/messaging/v1/email-feedback/mime", content=body, headers=intake)
        assert answer.status_code == 200 and answer.json()["applied"] == 1, answer.text

    window = {"from": today, "to": today}
    of_campaign = [{"name": "campaign_id", "operator": "equals", "value": campaign_id}]

    def did(name: str, **extra: Any) -> dict[str, Any]:
        return {"event_name": name, **window, "event_properties": of_campaign, **extra}

    # CQL: opened the campaign but did not click it.
    opened_not_clicked = {
        **did("Notification Viewed"),
        "advanced_query": {"did_none": [did("Notification Clicked")]},
    }
    assert wait_for(url, opened_not_clicked, {"bob"}) == {"bob"}
    assert wait_for(url, did("Notification Clicked"), {"ann"}) == {"ann"}
    assert wait_for(url, did("Channel Unsubscribed"), {"cat"}) == {"cat"}
    hard = did(
        "Notification Bounced", event_properties=[*of_campaign, {"name": "bounce_type", "value": "hard"}]
    )
    assert wait_for(url, hard, {"dan"}) == {"dan"}
    assert wait_for(url, did("Notification Delivered"), {"eve"}) == {"eve"}
    # Native conditions: sent this campaign, and not delivered anything in the last 30 days.
    sent_not_delivered = {
        **did("Notification Sent"),
        "conditions": [{"did_not": {"event_name": "Notification Delivered", "last_days": 30}}],
    }
    assert wait_for(url, sent_not_delivered, {"ann", "bob", "cat", "dan"}) == {"ann", "bob", "cat", "dan"}
    # Another campaign id matches nobody.
    other = {
        "event_name": "Notification Viewed",
        **window,
        "event_properties": [{"name": "campaign_id", "value": campaign_id + 1}],
    }
    assert users(url, other) == set()
    counted = call("POST", f"{url}/1/counts/profiles.json", json=opened_not_clicked)
    assert counted["count"] == 1

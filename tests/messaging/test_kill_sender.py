"""Kill the suite with SIGKILL mid-campaign and start it again: every eligible user gets the message exactly once.

The suite runs as a real ``tapwire up`` subprocess (gateway, loader, messaging in one process) against a local
SMTP sink. A message that was on the wire when the process died is re-sent after restart with the same
Message-ID (its outbox key); the sink, like a mailbox provider, keeps one message per Message-ID. The test
checks both views: the mailbox holds each eligible user exactly once, and every extra raw delivery is such a
same-key resend of a message that was in flight, never a second, different message.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import TapwireProcess
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-KILL-0001", "passcode-kill-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
USERS = 3000
SENDERS = 8


def _post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", headers=HEADERS, json=body, timeout=30)


def _upload_profiles(url: str) -> None:
    for start in range(0, USERS, 1000):
        records = [
            {
                "type": "profile",
                "identity": f"user{i}",
                "profileData": {"Email": f"user{i}@example.com", "Name": f"User {i}"},
            }
            for i in range(start, min(USERS, start + 1000))
        ]
        response = _post(url, "/1/upload", {"d": records})
        assert response.json()["processed"] == len(records), response.text


def _wait(predicate: Any, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_mid_campaign_then_restart_delivers_each_message_once(tmp_path: Path) -> None:
    with smtp_sink() as sink:
        env = {
            "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-kill-0123456789abcdef",
            "TAPWIRE_SMTP_URL": sink.url,
            "TAPWIRE_EMAIL_FROM": "news@shop.example",
            "TAPWIRE_MESSAGING_SECRET": "kill-test-secret-0123456789abcdef",
            "TAPWIRE_MESSAGING_LEASE_S": "2",
            "TAPWIRE_MESSAGING_SENDERS": str(SENDERS),
            "TAPWIRE_LOG_LEVEL": "WARNING",
        }
        suite = TapwireProcess(["up"], env, tmp_path / "suite.log").start()
        try:
            suite.wait_ready()
            _upload_profiles(suite.url)
            _wait(
                lambda: (
                    _post(suite.url, "/1/targets/estimate.json", _campaign())
                    .json()
                    .get("estimate", {})
                    .get("reach")
                    == USERS
                ),
                "profiles to reach the warehouse",
            )
            created = _post(suite.url, "/1/targets/create.json", _campaign())
            assert created.status_code == 200, created.text
            campaign_id = created.json()["id"]
            _wait(lambda: len(sink.receipts) >= USERS // 3, "a third of the campaign to go out")
            suite.kill()
            at_kill = len(sink.receipts)
            assert at_kill < USERS, "the campaign finished before the kill; nothing was tested"

            restarted = TapwireProcess(["up"], env, tmp_path / "suite.log", port=suite.port).start()
            try:
                restarted.wait_ready()
                _wait(
                    lambda: (
                        _post(restarted.url, "/1/targets/result.json", {"id": campaign_id}).status_code == 200
                    ),
                    "the campaign to complete after restart",
                )
                result = _post(restarted.url, "/1/targets/result.json", {"id": campaign_id}).json()["result"]
            finally:
                restarted.stop()
        finally:
            suite.kill()

    expected = {f"user{i}@example.com" for i in range(USERS)}
    mailbox = sink.by_recipient()
    assert set(mailbox) == expected
    assert all(len(messages) == 1 for messages in mailbox.values())
    assert result["sent"] == USERS and result["status"] == "completed"
    # Raw deliveries beyond one per user are resends of in-flight messages under their own Message-ID.
    per_id = Counter(str(m["Message-ID"]) for m in sink.receipts)
    per_user = Counter(str(m["To"]) for m in sink.receipts)
    assert all(per_user[str(m["To"])] == per_id[str(m["Message-ID"])] for m in sink.receipts)
    assert len(sink.receipts) - USERS <= SENDERS + 1000


def _campaign() -> dict[str, Any]:
    return {
        "name": "kill test",
        "target_mode": "email",
        "where": {},
        "throttle_per_s": 600,
        "content": {"subject": "Hello {{ Profile.Name }}", "body": "Hi"},
    }

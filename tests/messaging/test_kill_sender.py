"""Kill the suite with SIGKILL mid-campaign and start it again: no duplicate at the sink, none missing.

The suite runs as a real ``tapwire up`` subprocess (gateway, loader, messaging in one process) against a local
SMTP sink that, like a mailbox provider, keeps one message per Message-ID. SMTP has no other idempotency key, so
a message the server accepted just before the kill, whose outcome the sender had not yet written, goes out again
after the restart under the same Message-ID. The test checks the mailbox (each user exactly once, nobody
missing), that every user only ever got one Message-ID, and the raw receipts against the outbox as the kill left
it: rows already recorded are never sent again, and the repeats are rows left ``sending`` by the kill, no more
of them than the configured send window.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tapwire_core.settings import Settings
from tests.infra.suite_api import AccountApi, wait_for
from tests.integration.processes import TapwireProcess
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-KILL-0001", "passcode-kill-0123456789abcdef"
USERS = 3000
SENDERS = 8
# Smaller than SENDERS, so the window (not the sender count) is what bounds the unrecorded sends.
SEND_WINDOW = 6


def _upload_profiles(api: AccountApi) -> None:
    for start in range(0, USERS, 1000):
        records = [
            {
                "type": "profile",
                "identity": f"user{i}",
                "profileData": {"Email": f"user{i}@example.com", "Name": f"User {i}"},
            }
            for i in range(start, min(USERS, start + 1000))
        ]
        response = api.post("/1/upload", {"d": records})
        assert response.json()["processed"] == len(records), response.text


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
            "TAPWIRE_MESSAGING_SEND_WINDOW": str(SEND_WINDOW),
            "TAPWIRE_LOG_LEVEL": "WARNING",
        }
        settings = Settings.model_validate({k.removeprefix("TAPWIRE_").lower(): v for k, v in env.items()})
        window = settings.resolved_send_window()
        suite = TapwireProcess(["up"], env, tmp_path / "suite.log").start()
        try:
            suite.wait_ready()
            api = AccountApi(suite.url, ACCOUNT, PASSCODE)
            _upload_profiles(api)
            wait_for(lambda: api.reach({}) == USERS, "profiles to reach the warehouse")
            created = api.post("/1/targets/create.json", _campaign())
            assert created.status_code == 200, created.text
            campaign_id = created.json()["id"]
            wait_for(lambda: len(sink.receipts) >= USERS // 3, "a third of the campaign to go out")
            suite.kill()
            at_kill = _outbox_states(tmp_path / "data" / "control.db", campaign_id)
            assert Counter(at_kill.values())["sent"] < USERS, "the campaign finished before the kill"

            restarted = suite.successor()
            try:
                restarted.wait_ready()
                wait_for(
                    lambda: api.campaign_result(campaign_id) is not None,
                    "the campaign to complete after restart",
                )
                result = api.campaign_result(campaign_id)
                assert result is not None
            finally:
                restarted.stop()
        finally:
            suite.kill()

    expected = {f"user{i}@example.com" for i in range(USERS)}
    mailbox = sink.by_recipient()
    assert set(mailbox) == expected, f"missing: {sorted(expected - set(mailbox))[:5]}"
    assert [to for to, messages in mailbox.items() if len(messages) != 1] == []
    assert result["sent"] == USERS and result["status"] == "completed"

    with sink.lock:
        raw = [(str(m["To"]), str(m["Message-ID"])) for m in sink.receipts]
    message_ids: dict[str, set[str]] = {}
    for to, message_id in raw:
        message_ids.setdefault(to, set()).add(message_id)
    assert [to for to, ids in message_ids.items() if len(ids) != 1] == [], "a user got two different messages"
    receipts = Counter(to for to, _ in raw)
    state = {f"{key.removeprefix('i:')}@example.com": status for key, status in at_kill.items()}
    # A row whose outcome was written before the kill is never sent again, and one still pending was never sent.
    assert [to for to, n in receipts.items() if n != 1 and state[to] != "sending"] == []
    # Repeats are the rows the kill left "sending": each went out at most twice, and at most one send window
    # of them had reached the server (the window is how many sends may be unrecorded at any moment).
    repeated = [to for to, n in receipts.items() if n > 1]
    assert max(receipts.values()) <= 2
    assert len(raw) - USERS == len(repeated) <= window, (
        f"{len(repeated)} messages reached the sink twice; the send window is {window}"
    )
    assert Counter(at_kill.values())["sending"] > window, (
        "the kill left too few rows in flight to test the window"
    )


def _outbox_states(database: Path, campaign_id: int) -> dict[str, str]:
    """user key -> outbox status, as the killed process left its control database."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT user_key, status FROM outbox WHERE campaign_id = ?", (campaign_id,)
        ).fetchall()
    return {str(user_key): str(status) for user_key, status in rows}


def _campaign() -> dict[str, Any]:
    return {
        "name": "kill test",
        "target_mode": "email",
        "where": {},
        "throttle_per_s": 600,
        "content": {"subject": "Hello {{ Profile.Name }}", "body": "Hi"},
    }

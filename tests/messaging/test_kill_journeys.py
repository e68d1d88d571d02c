"""SIGKILL ``tapwire up`` during a journey's send, during its wait and during its second send: after each
restart the journey goes on, and every user gets each step's message once.

The sink keeps one message per Message-ID, as a mailbox does: a message the server took just before a kill,
whose outcome was not yet written, goes out again under the same Message-ID (at most a send window of them per
kill, as for campaigns). The test checks the mailbox (each user exactly one message per step), that no user got
two different messages for one step, and the raw repeats against the send window.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import TapwireProcess
from tests.messaging.servers import SmtpSink, smtp_sink

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-KJRN-0001", "passcode-kjrn-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
USERS = 300
SEND_WINDOW = 6
WAIT_S = 120


def _post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", headers=HEADERS, json=body, timeout=30)


def _wait(predicate: Any, what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _statuses(database: Path) -> Counter[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT status, count(*) FROM journey_positions GROUP BY status").fetchall()
    return Counter({str(status): int(n) for status, n in rows})


def _raw(sink: SmtpSink, subject: str) -> int:
    with sink.lock:
        return sum(1 for m in sink.receipts if str(m["Subject"]) == subject)


def stage(what: str, database: Path, sink: SmtpSink) -> None:
    """Where the test is, for the log of a run that times out."""
    print(
        f"{time.strftime('%H:%M:%S')} {what}: positions {dict(_statuses(database))}, "
        f"welcomes {_raw(sink, 'Welcome')}, follow-ups {_raw(sink, 'Follow-up')}",
        file=sys.stderr,
        flush=True,
    )


def _definition() -> dict[str, Any]:
    def send(subject: str) -> dict[str, Any]:
        return {
            "type": "send",
            "channel": "email",
            "content": {"subject": subject, "body": "Hi"},
            "throttle_per_s": 100,
        }

    return {
        "entry": {"trigger": {"event": "Signed Up"}},
        "start": "welcome",
        "steps": {
            "welcome": send("Welcome") | {"next": "pause"},
            "pause": {"type": "wait", "duration_s": WAIT_S, "next": "followup"},
            "followup": send("Follow-up"),
        },
    }


@pytest.mark.timeout(900)
def test_sigkill_during_sends_and_a_wait_gives_each_user_each_step_once(tmp_path: Path) -> None:
    database = tmp_path / "data" / "control.db"
    with smtp_sink() as sink:
        env = {
            "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-kjrn-0123456789abcdef",
            "TAPWIRE_SMTP_URL": sink.url,
            "TAPWIRE_EMAIL_FROM": "news@shop.example",
            "TAPWIRE_MESSAGING_SECRET": "kjrn-test-secret-0123456789abcdef",
            "TAPWIRE_MESSAGING_LEASE_S": "2",
            "TAPWIRE_MESSAGING_SENDERS": "8",
            "TAPWIRE_MESSAGING_SEND_WINDOW": str(SEND_WINDOW),
            "TAPWIRE_LOG_LEVEL": "WARNING",
        }
        log = tmp_path / "suite.log"
        suite = TapwireProcess(["up"], env, log).start()
        port = suite.port
        processes = [suite]
        try:
            suite.wait_ready()
            profiles = [
                {"type": "profile", "identity": f"user{i}", "profileData": {"Email": f"user{i}@example.com"}}
                for i in range(USERS)
            ]
            assert _post(suite.url, "/1/upload", {"d": profiles}).json()["processed"] == USERS
            estimate = {
                "name": "x",
                "target_mode": "email",
                "where": {},
                "content": {"subject": "s", "body": "b"},
            }
            _wait(
                lambda: (
                    _post(suite.url, "/1/targets/estimate.json", estimate).json()["estimate"]["reach"]
                    == USERS
                ),
                "the profiles to reach the warehouse",
            )
            created = _post(
                suite.url, "/messaging/v1/journeys", {"name": "onboarding", "definition": _definition()}
            )
            assert created.status_code == 201, created.text
            signups = [
                {"type": "event", "identity": f"user{i}", "evtName": "Signed Up"} for i in range(USERS)
            ]
            assert _post(suite.url, "/1/upload", {"d": signups}).json()["processed"] == USERS

            # 1. During the first send.
            _wait(lambda: _raw(sink, "Welcome") >= USERS // 3, "a third of the welcomes")
            suite.kill()
            stage("killed during the welcomes", database, sink)
            assert _raw(sink, "Welcome") < USERS, "the welcomes were all out before the kill"

            # 2. During the wait: every welcome out, no follow-up yet.
            suite = TapwireProcess(["up"], env, log, port=port).start()
            processes.append(suite)
            suite.wait_ready()
            stage("restarted", database, sink)
            _wait(lambda: len(sink.by_recipient()) == USERS, "every welcome after the first restart")
            _wait(lambda: _statuses(database)["waiting"] > 0, "users waiting")
            suite.kill()
            stage("killed during the wait", database, sink)
            assert _raw(sink, "Follow-up") == 0, "the wait was over before the kill"

            # 3. During the second send.
            suite = TapwireProcess(["up"], env, log, port=port).start()
            processes.append(suite)
            suite.wait_ready()
            _wait(
                lambda: _raw(sink, "Follow-up") >= USERS // 3,
                "a third of the follow-ups",
                timeout_s=WAIT_S + 120,
            )
            suite.kill()
            stage("killed during the follow-ups", database, sink)
            assert _raw(sink, "Follow-up") < USERS, "the follow-ups were all out before the kill"

            suite = TapwireProcess(["up"], env, log, port=port).start()
            processes.append(suite)
            suite.wait_ready()
            _wait(lambda: _statuses(database) == Counter({"completed": USERS}), "every user to finish")
            _wait(lambda: _raw(sink, "Follow-up") >= USERS, "every follow-up")
            time.sleep(3)  # room for a late duplicate to show
            suite.stop()
        finally:
            for process in processes:
                process.kill()

    mailbox = {
        to: sorted(str(m["Subject"]) for m in messages) for to, messages in sink.by_recipient().items()
    }
    assert len(mailbox) == USERS
    assert [to for to, subjects in mailbox.items() if subjects != ["Follow-up", "Welcome"]] == []
    with sink.lock:
        raw = [(str(m["To"]), str(m["Subject"]), str(m["Message-ID"])) for m in sink.receipts]
    ids: dict[tuple[str, str], set[str]] = {}
    for to, subject, message_id in raw:
        ids.setdefault((to, subject), set()).add(message_id)
    assert [key for key, found in ids.items() if len(found) != 1] == [], (
        "a user got two different messages for a step"
    )
    # Two kills came during sends: each can have left at most a send window of messages unrecorded.
    assert len(raw) - 2 * USERS <= 2 * SEND_WINDOW

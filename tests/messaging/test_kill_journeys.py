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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.suite_api import AccountApi, wait_for
from tests.integration.processes import TapwireProcess
from tests.messaging.servers import SmtpSink, smtp_sink

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-KJRN-0001", "passcode-kjrn-0123456789abcdef"
USERS = 300
SEND_WINDOW = 6
WAIT_S = 120


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    wait_for(predicate, what, timeout_s=timeout_s, poll_s=0.05)


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


def _suite_env(tmp_path: Path, sink: SmtpSink) -> dict[str, str]:
    return {
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


def _enter_every_user(api: AccountApi) -> None:
    """Profiles with addresses, the journey, then every user's entry event."""
    profiles = [
        {"type": "profile", "identity": f"user{i}", "profileData": {"Email": f"user{i}@example.com"}}
        for i in range(USERS)
    ]
    assert api.post("/1/upload", {"d": profiles}).json()["processed"] == USERS
    _wait(lambda: api.reach({}) == USERS, "the profiles to reach the warehouse")
    created = api.post("/messaging/v1/journeys", {"name": "onboarding", "definition": _definition()})
    assert created.status_code == 201, created.text
    signups = [{"type": "event", "identity": f"user{i}", "evtName": "Signed Up"} for i in range(USERS)]
    assert api.post("/1/upload", {"d": signups}).json()["processed"] == USERS


def _kill_at_each_stage(suite: TapwireProcess, processes: list[TapwireProcess], sink: SmtpSink) -> None:
    """Kill during the welcomes, during the wait and during the follow-ups, restarting after each, then let
    the last process finish every user's journey."""
    database = Path(suite.env["TAPWIRE_DATA_DIR"]) / "control.db"

    def restart() -> TapwireProcess:
        process = suite.successor()
        processes.append(process)
        process.wait_ready()
        return process

    # 1. During the first send.
    _wait(lambda: _raw(sink, "Welcome") >= USERS // 3, "a third of the welcomes")
    suite.kill()
    stage("killed during the welcomes", database, sink)
    assert _raw(sink, "Welcome") < USERS, "the welcomes were all out before the kill"

    # 2. During the wait: every welcome out, no follow-up yet.
    suite = restart()
    stage("restarted", database, sink)
    _wait(lambda: len(sink.by_recipient()) == USERS, "every welcome after the first restart")
    _wait(lambda: _statuses(database)["waiting"] > 0, "users waiting")
    suite.kill()
    stage("killed during the wait", database, sink)
    assert _raw(sink, "Follow-up") == 0, "the wait was over before the kill"

    # 3. During the second send.
    suite = restart()
    _wait(lambda: _raw(sink, "Follow-up") >= USERS // 3, "a third of the follow-ups", timeout_s=WAIT_S + 120)
    suite.kill()
    stage("killed during the follow-ups", database, sink)
    assert _raw(sink, "Follow-up") < USERS, "the follow-ups were all out before the kill"

    suite = restart()
    _wait(lambda: _statuses(database) == Counter({"completed": USERS}), "every user to finish")
    _wait(lambda: _raw(sink, "Follow-up") >= USERS, "every follow-up")
    time.sleep(3)  # room for a late duplicate to show
    suite.stop()


def _assert_each_step_once(sink: SmtpSink) -> None:
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


@pytest.mark.timeout(900)
def test_sigkill_during_sends_and_a_wait_gives_each_user_each_step_once(tmp_path: Path) -> None:
    with smtp_sink() as sink:
        suite = TapwireProcess(["up"], _suite_env(tmp_path, sink), tmp_path / "suite.log").start()
        processes = [suite]
        try:
            suite.wait_ready()
            _enter_every_user(AccountApi(suite.url, ACCOUNT, PASSCODE))
            _kill_at_each_stage(suite, processes, sink)
        finally:
            for process in processes:
                process.kill()
    _assert_each_step_once(sink)

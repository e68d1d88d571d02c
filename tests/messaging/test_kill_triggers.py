"""SIGKILL ``tapwire up`` while a triggered message waits out its delay: after a restart it leaves exactly once.

The event comes in through the gateway (``/1/upload``, 200 = durable on the embedded log), the evaluator turns
it into a timer in the control database, and the process is killed while the timer waits. The restarted process
must neither lose the timer nor send it twice, and must not make a second timer from re-reading the event.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.infra.suite_api import AccountApi, wait_for
from tests.integration.processes import TapwireProcess
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-KTRG-0001", "passcode-ktrg-0123456789abcdef"
DELAY_S = 15


def _timers(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT user_key, status FROM trigger_timers ORDER BY id").fetchall()
    return [(str(user), str(status)) for user, status in rows]


def test_sigkill_while_a_trigger_waits_then_restart_sends_it_once(tmp_path: Path) -> None:
    database = tmp_path / "data" / "control.db"
    with smtp_sink() as sink:
        env = {
            "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-ktrg-0123456789abcdef",
            "TAPWIRE_SMTP_URL": sink.url,
            "TAPWIRE_EMAIL_FROM": "news@shop.example",
            "TAPWIRE_MESSAGING_SECRET": "ktrg-test-secret-0123456789abcdef",
            "TAPWIRE_MESSAGING_LEASE_S": "2",
            "TAPWIRE_LOG_LEVEL": "WARNING",
        }
        suite = TapwireProcess(["up"], env, tmp_path / "suite.log").start()
        try:
            suite.wait_ready()
            api = AccountApi(suite.url, ACCOUNT, PASSCODE)
            profile = {"type": "profile", "identity": "ann", "profileData": {"Email": "ann@example.com"}}
            assert api.post("/1/upload", {"d": [profile]}).json()["processed"] == 1
            wait_for(lambda: api.reach({}) == 1, "the profile to reach the warehouse")
            created = api.post(
                "/messaging/v1/campaigns",
                {
                    "name": "delayed",
                    "channel": "email",
                    "trigger": {"event": "Added To Cart", "delay_s": DELAY_S},
                    "content": {"subject": "Your {{ Event.product }}", "body": "is waiting"},
                },
            )
            assert created.status_code == 201, created.text
            cart = {
                "type": "event",
                "identity": "ann",
                "evtName": "Added To Cart",
                "evtData": {"product": "shoes"},
            }
            uploaded_at = time.monotonic()
            assert api.post("/1/upload", {"d": [cart]}).json()["processed"] == 1
            wait_for(lambda: _timers(database) == [("i:ann", "waiting")], "the timer to be written")
            suite.kill()
            assert time.monotonic() - uploaded_at < DELAY_S, (
                "the kill came after the delay; the test proves nothing"
            )
            assert sink.receipts == []

            restarted = suite.successor()
            try:
                restarted.wait_ready()
                wait_for(
                    lambda: _timers(database) == [("i:ann", "fired")], "the timer to fire after the restart"
                )
                wait_for(lambda: len(sink.receipts) >= 1, "the message")
                # Long enough for a duplicate timer (from the re-read event) or a second send to show up.
                time.sleep(3)
            finally:
                restarted.stop()
        finally:
            suite.kill()
    assert [str(m["Subject"]) for m in sink.receipts] == ["Your shoes"]
    assert _timers(database) == [("i:ann", "fired")]

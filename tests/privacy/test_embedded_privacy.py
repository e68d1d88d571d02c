"""The privacy service inside ``tapwire up`` (a real subprocess): erase over HTTP, late events suppressed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import TapwireProcess

ACCOUNT, PASSCODE = "TAP-PRIV-0001", "passcode-privacy-0123456789"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
JAN_5 = 1_767_571_200

pytestmark = pytest.mark.integration


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[TapwireProcess]:
    proc = TapwireProcess(
        ["up"],
        env={
            "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-privacy-0123456789",
            "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
            "TAPWIRE_PRIVACY_POLL_S": "0.2",
            "TAPWIRE_PRIVACY_SWEEP_DELAY_S": "1",
            "TAPWIRE_EMBEDDED_LOG_RETENTION_HOURS": "0.002",  # 7 s: an erasure completes once its copies are gone
            "TAPWIRE_PRIVACY_SUPPRESSION_REFRESH_S": "0.2",
        },
        log_path=tmp_path / "tapwire.log",
    ).start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.kill()


def upload(url: str, records: list[dict[str, Any]]) -> None:
    response = httpx.post(f"{url}/1/upload", headers=HEADERS, json={"d": records}, timeout=10)
    assert response.status_code == 200 and response.json()["processed"] == len(records), response.text


def count(url: str) -> int:
    body = {"event_name": "Viewed", "from": 20260101, "to": 20260131}
    response = httpx.post(f"{url}/1/counts/events.json", headers=HEADERS, json=body, timeout=10)
    value: int = response.json()["count"]
    return value


def wait_until(check: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def suppressed_total(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith('tapwire_suppressed_records_total{stage="gateway"}'):
            return float(line.split()[-1])
    return 0.0


def test_erasure_through_the_embedded_suite(suite: TapwireProcess) -> None:
    url = suite.url
    viewed = {"type": "event", "ts": JAN_5, "evtName": "Viewed", "evtData": {}}
    # Identical records collapse into one event, so each carries its own data.
    upload(
        url,
        [
            {**viewed, "identity": "zoe", "evtData": {"n": 1}},
            {**viewed, "identity": "zoe", "evtData": {"n": 2}},
            {**viewed, "identity": "yan"},
        ],
    )
    upload(
        url,
        [{"type": "profile", "identity": "zoe", "ts": JAN_5, "profileData": {"Email": "zoe@example.com"}}],
    )
    wait_until(lambda: count(url) == 3, "the events to load")
    wait_until(
        lambda: httpx.get(f"{url}/1/profile.json?email=zoe@example.com", headers=HEADERS).status_code == 200,
        "the profile to load",
    )

    response = httpx.post(
        f"{url}/1/delete/profiles.json", headers=HEADERS, json={"identity": "zoe"}, timeout=10
    )
    assert response.status_code == 200, response.text
    request_id = response.json()["requests"][0]["id"]

    def completed() -> bool:
        body = httpx.get(f"{url}/privacy/v1/requests/{request_id}", headers=HEADERS, timeout=10).json()
        return bool(body["status"] == "completed")

    wait_until(completed, "the erasure to complete")
    detail = httpx.get(f"{url}/privacy/v1/requests/{request_id}", headers=HEADERS, timeout=10).json()
    assert detail["verification"]["sweeps"] == 2
    assert count(url) == 1
    assert httpx.get(f"{url}/1/profile.json?identity=zoe", headers=HEADERS).status_code == 404
    assert httpx.get(f"{url}/1/profile.json?email=zoe@example.com", headers=HEADERS).status_code == 404

    # A late event for the erased subject is acknowledged, dropped and counted; others still land.
    before = suppressed_total(url)
    upload(url, [{**viewed, "identity": "zoe"}, {**viewed, "identity": "xia"}])
    wait_until(lambda: count(url) == 2, "the other subject's event")
    assert suppressed_total(url) - before == 1
    assert httpx.get(f"{url}/1/profile.json?identity=zoe", headers=HEADERS).status_code == 404

"""The embedded suite as a user runs it: ``tapwire up`` in a subprocess, HTTP in, HTTP out, SIGKILL-safe."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import TapwireProcess
from tests.integration.warehouse_inspect import event_id_counts

ACCOUNT, PASSCODE = "TAP-E2E-0001", "passcode-e2e-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
ACCOUNTS = f"{ACCOUNT}:{PASSCODE}:writekey-e2e-0123456789abcdef"
JAN_5 = 1_767_571_200  # 2026-01-05T00:00:00Z

pytestmark = pytest.mark.integration


def embedded(data_dir: Path, log: Path) -> TapwireProcess:
    return TapwireProcess(
        ["up"],
        env={
            "TAPWIRE_DATA_DIR": str(data_dir),
            "TAPWIRE_ACCOUNTS": ACCOUNTS,
            "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
        },
        log_path=log,
    )


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[TapwireProcess]:
    proc = embedded(tmp_path / "data", tmp_path / "tapwire.log").start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.kill()


def count(url: str, name: str, first: int = 20260101, last: int = 20260131) -> int:
    body = {"event_name": name, "from": first, "to": last}
    response = httpx.post(f"{url}/1/counts/events.json", headers=HEADERS, json=body, timeout=10)
    assert response.status_code == 200, response.text
    value: int = response.json()["count"]
    return value


def wait_for_count(url: str, name: str, at_least: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        seen = count(url, name)
        if seen >= at_least:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"only {seen} of {at_least} {name!r} events became visible")


def upload(url: str, records: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(f"{url}/1/upload", headers=HEADERS, json={"d": records}, timeout=10)


def test_upload_then_read_back(suite: TapwireProcess) -> None:
    events = [
        {"type": "event", "identity": "ann", "ts": JAN_5 + i, "evtName": "Viewed", "evtData": {"i": i}}
        for i in range(5)
    ] + [{"type": "event", "identity": "+14155551234", "ts": JAN_5, "evtName": "Viewed", "evtData": {}}]
    profile = {
        "type": "profile",
        "identity": "ann",
        "ts": JAN_5,
        "profileData": {"Name": "Ann", "Email": "ann@example.com", "Plan": "pro", "Phone": "+14155550000"},
    }
    response = upload(suite.url, [*events, profile, {"type": "event", "identity": "ann"}])
    assert response.status_code == 200
    assert response.json()["processed"] == 7
    assert response.json()["unprocessed"][0]["code"] == 509

    assert wait_for_count(suite.url, "Viewed", 6) == 6
    assert count(suite.url, "Viewed", 20260106, 20260131) == 0

    by_identity = httpx.get(f"{suite.url}/1/profile.json?identity=ann", headers=HEADERS).json()
    assert by_identity["status"] == "success"
    record = by_identity["record"]
    assert record["profileData"] == {
        "Name": "Ann",
        "Email": "ann@example.com",
        "Plan": "pro",
        "Phone": "+14155550000",
    }
    assert record["events"]["Viewed"] == {"count": 5, "first_seen": JAN_5, "last_seen": JAN_5 + 4}

    by_email = httpx.get(f"{suite.url}/1/profile.json?email=ann@example.com", headers=HEADERS).json()
    assert by_email["record"]["identity"] == "ann"
    # CleverTap's clients put a phone identity into the URL unencoded: the "+" must survive.
    phone = httpx.get(f"{suite.url}/1/profile.json?identity=+14155551234", headers=HEADERS).json()
    assert phone["record"]["events"]["Viewed"]["count"] == 1
    missing = httpx.get(f"{suite.url}/1/profile.json?identity=nobody", headers=HEADERS)
    assert missing.status_code == 404 and missing.json()["status"] == "fail"


def test_profile_latest_ts_wins(suite: TapwireProcess) -> None:
    newer = {"type": "profile", "identity": "bo", "ts": JAN_5 + 60, "profileData": {"Plan": "pro"}}
    older = {
        "type": "profile",
        "identity": "bo",
        "ts": JAN_5,
        "profileData": {"Plan": "free", "City": "Oslo"},
    }
    assert upload(suite.url, [newer]).status_code == 200
    assert upload(suite.url, [older]).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = httpx.get(f"{suite.url}/1/profile.json?identity=bo", headers=HEADERS)
        if response.status_code == 200 and "City" in response.json()["record"]["profileData"]:
            break
        time.sleep(0.2)
    assert response.json()["record"]["profileData"] == {"Plan": "pro", "City": "Oslo"}


def test_profile_operators_fold_in_order(suite: TapwireProcess) -> None:
    records = [
        {"type": "profile", "identity": "cy", "ts": JAN_5, "profileData": {"Score": 10, "Tags": ["a"]}},
        {"type": "profile", "identity": "cy", "ts": JAN_5 + 1, "profileData": {"Score": {"$incr": 5}}},
        {"type": "profile", "identity": "cy", "ts": JAN_5 + 2, "profileData": {"Score": {"$decr": 1}}},
        {"type": "profile", "identity": "cy", "ts": JAN_5 + 3, "profileData": {"Tags": {"$add": ["b", "c"]}}},
        {"type": "profile", "identity": "cy", "ts": JAN_5 + 4, "profileData": {"Tags": {"$remove": "a"}}},
    ]
    body = {"d": records}
    for _ in range(2):  # the same request twice: a retry must not apply the operators again
        assert httpx.post(f"{suite.url}/1/upload", headers=HEADERS, json=body, timeout=10).status_code == 200
    deadline = time.monotonic() + 30
    data: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{suite.url}/1/profile.json?identity=cy", headers=HEADERS)
        if response.status_code == 200:
            data = response.json()["record"]["profileData"]
            if data.get("Tags") == ["b", "c"]:
                break
        time.sleep(0.2)
    assert data == {"Score": 14, "Tags": ["b", "c"]}


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = embedded(data_dir, tmp_path / "first.log").start()
    first.wait_ready()
    acked: list[str] = []
    stop = threading.Event()

    def send() -> None:
        batch = 0
        with httpx.Client(headers=HEADERS, timeout=5) as client:
            while not stop.is_set():
                ids = [f"kill-{batch}-{i}" for i in range(50)]
                records = [
                    {
                        "type": "event",
                        "identity": f"u{i % 7}",
                        "ts": JAN_5,
                        "evtName": "K",
                        "evtData": {},
                        "evtId": eid,
                    }
                    for i, eid in enumerate(ids)
                ]
                try:
                    response = client.post(f"{first.url}/1/upload", json={"d": records})
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    acked.extend(ids)
                batch += 1

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(random.uniform(1.0, 2.5))
    first.kill()
    stop.set()
    sender.join(10)
    assert acked, "no upload was acknowledged before the kill"

    second = embedded(data_dir, tmp_path / "second.log").start()
    try:
        second.wait_ready()
        visible = wait_for_count(second.url, "K", len(acked))
    finally:
        assert second.stop() == 0

    counts = event_id_counts(data_dir / "chdb", ACCOUNT, "K")
    missing = set(acked) - set(counts)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    assert all(n == 1 for n in counts.values()), "an event is stored twice"
    assert visible == len(counts)

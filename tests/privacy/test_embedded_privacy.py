"""The privacy service inside ``tapwire up`` (a real subprocess): erase over HTTP, late events suppressed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.infra.privacy_suite import erase_and_wait, fast_privacy_suite
from tests.infra.suite_api import AccountApi, wait_for

ACCOUNT, PASSCODE = "TAP-PRIV-0001", "passcode-privacy-0123456789"
JAN_5 = 1_767_571_200

pytestmark = pytest.mark.integration


@pytest.fixture
def api(tmp_path: Path) -> Iterator[AccountApi]:
    accounts = f"{ACCOUNT}:{PASSCODE}:writekey-privacy-0123456789"
    with fast_privacy_suite(tmp_path, accounts=accounts, ready_timeout_s=240) as suite:
        yield AccountApi(suite.url, ACCOUNT, PASSCODE)


def upload(api: AccountApi, records: list[dict[str, Any]]) -> None:
    response = api.post("/1/upload", {"d": records}, timeout_s=10)
    assert response.status_code == 200 and response.json()["processed"] == len(records), response.text


def count(api: AccountApi) -> int:
    return api.event_count("Viewed", days=(20260101, 20260131))


def wait_until(check: Any, what: str, timeout_s: float = 60) -> None:
    wait_for(check, what, timeout_s=timeout_s, poll_s=0.2)


def suppressed_total(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith('tapwire_suppressed_records_total{stage="gateway"}'):
            return float(line.split()[-1])
    return 0.0


def test_erasure_through_the_embedded_suite(api: AccountApi) -> None:
    viewed = {"type": "event", "ts": JAN_5, "evtName": "Viewed", "evtData": {}}
    # Identical records collapse into one event, so each carries its own data.
    upload(
        api,
        [
            {**viewed, "identity": "zoe", "evtData": {"n": 1}},
            {**viewed, "identity": "zoe", "evtData": {"n": 2}},
            {**viewed, "identity": "yan"},
        ],
    )
    upload(
        api,
        [{"type": "profile", "identity": "zoe", "ts": JAN_5, "profileData": {"Email": "zoe@example.com"}}],
    )
    wait_until(lambda: count(api) == 3, "the events to load")
    wait_until(lambda: api.profile_status(email="zoe@example.com") == 200, "the profile to load")

    detail = erase_and_wait(api, "zoe", timeout_s=60)
    assert detail["verification"]["sweeps"] == 2
    assert count(api) == 1
    assert api.profile_status(identity="zoe") == 404
    assert api.profile_status(email="zoe@example.com") == 404

    # A late event for the erased subject is acknowledged, dropped and counted; others still land.
    before = suppressed_total(api.url)
    upload(api, [{**viewed, "identity": "zoe"}, {**viewed, "identity": "xia"}])
    wait_until(lambda: count(api) == 2, "the other subject's event")
    assert suppressed_total(api.url) - before == 1
    assert api.profile_status(identity="zoe") == 404

"""An erasure reaches what the Web SDK stored: through ``tapwire up``, a person's two browsers (device ids linked
by logins) and their events go with the person, another visitor's stay, and the erased browsers' later requests
are dropped. Requests are made with the SDK's own encoder (``tests/websdk/requests.py``)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import TapwireProcess
from tests.websdk.requests import event, profile, sdk_url
from tests.websdk.sdk_encoder import SdkEncoder

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-WEBPRIV-01", "passcode-webpriv-0123456789"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[TapwireProcess]:
    proc = TapwireProcess(
        ["up"],
        env={
            "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-webpriv-0123456789",
            "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
            "TAPWIRE_PRIVACY_POLL_S": "0.2",
            "TAPWIRE_PRIVACY_SWEEP_DELAY_S": "1",
            "TAPWIRE_EMBEDDED_LOG_RETENTION_HOURS": "0.002",  # 7 s: an erasure completes once its copies are gone
            "TAPWIRE_PRIVACY_SUPPRESSION_REFRESH_S": "0.2",
        },
        log_path=tmp_path / "tapwire.log",
    ).start()
    try:
        proc.wait_ready(timeout_s=180)
        yield proc
    finally:
        proc.kill()


def _wait(check: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _count(url: str, name: str) -> int:
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)
    body = {"event_name": name, "from": f"{today - day:%Y%m%d}", "to": f"{today + day:%Y%m%d}"}
    response = httpx.post(f"{url}/1/counts/events.json", headers=HEADERS, json=body, timeout=30)
    assert response.status_code == 200, response.text
    value: int = response.json()["count"]
    return value


def _profile_status(url: str, **key: str) -> int:
    return httpx.get(f"{url}/1/profile.json", params=key, headers=HEADERS, timeout=10).status_code


def test_erasure_removes_the_device_ids_and_what_they_sent(suite: TapwireProcess) -> None:
    url = suite.url
    with SdkEncoder() as encoder:

        def send(body: dict[str, Any], device: str, rn: int) -> None:
            response = httpx.get(
                url + sdk_url(encoder, "push", body, account_id=ACCOUNT, device_id=device, rn=rn)
            )
            assert response.status_code == 200 and response.text.startswith("window.$WZRK_WR"), response.text

        for number, device in enumerate(("zoe-laptop", "zoe-phone")):
            send(event("Browsed", {"n": number}), device, 1)
            send(profile({"Identity": "zoe", "Email": "zoe@example.org"}, login=True), device, 2)
        send(event("Browsed", {"n": 9}), "yan-laptop", 1)
        _wait(lambda: _count(url, "Browsed") == 3, "the events to load")
        _wait(lambda: _profile_status(url, objectId="zoe-phone") == 200, "the devices to count as Zoe")

        erased = httpx.post(
            f"{url}/1/delete/profiles.json", headers=HEADERS, json={"identity": "zoe"}, timeout=10
        )
        assert erased.status_code == 200, erased.text
        request_id = erased.json()["requests"][0]["id"]

        def completed() -> bool:
            detail = httpx.get(f"{url}/privacy/v1/requests/{request_id}", headers=HEADERS, timeout=10).json()
            return bool(detail["status"] == "completed")

        _wait(completed, "the erasure to complete")
        assert _count(url, "Browsed") == 1
        for device in ("zoe-laptop", "zoe-phone"):
            assert _profile_status(url, objectId=device) == 404
        assert _profile_status(url, identity="zoe") == 404
        assert _profile_status(url, objectId="yan-laptop") == 200

        # The erased browsers keep sending until their cookies go: answered, never stored.
        send(event("Browsed", {"n": 5}), "zoe-laptop", 3)
        send(event("Browsed", {"n": 10}), "yan-laptop", 2)
        _wait(lambda: _count(url, "Browsed") == 2, "the other visitor's event")
        time.sleep(1)
        assert _count(url, "Browsed") == 2

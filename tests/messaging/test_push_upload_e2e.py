"""Device tokens uploaded through ``/1/upload`` reach every device: the real gateway, loader and messaging
(``tapwire up``) against FCM-HTTP-v1- and APNs-shaped receivers on 127.0.0.1.

CleverTap takes token records by ``objectId`` only, while the profile names the user by ``identity`` too; the
identity graph links the two keys, and the push follows the link to both of the user's devices.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import TapwireProcess
from tests.messaging.push_receivers import push_providers

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-PUSH-0001", "passcode-push-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}


def _post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", headers=HEADERS, json=body, timeout=30)


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _reach(url: str, where: dict[str, Any]) -> int | None:
    estimate = {"name": "e", "target_mode": "push", "where": where, "content": {"title": "T", "body": "B"}}
    reach: int | None = (
        _post(url, "/1/targets/estimate.json", estimate).json().get("estimate", {}).get("reach")
    )
    return reach


def test_tokens_uploaded_for_an_object_id_reach_each_device_of_the_identified_user(tmp_path: Path) -> None:
    with push_providers(tmp_path) as providers:
        fcm, apns = providers.fcm, providers.apns
        env = providers.env | {
            "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-push-0123456789abcdef",
            "TAPWIRE_MESSAGING_SECRET": "push-test-secret-0123456789abcdef",
            "TAPWIRE_LOG_LEVEL": "WARNING",
        }
        suite = TapwireProcess(["up"], env, tmp_path / "suite.log").start()
        try:
            suite.wait_ready()
            records = [
                {
                    "type": "profile",
                    "identity": "ann",
                    "objectId": "guid-ann",
                    "profileData": {"Name": "Ann"},
                },
                {
                    "type": "token",
                    "objectId": "guid-ann",
                    "tokenData": {"id": "fcm-ann-phone", "type": "fcm"},
                },
                {
                    "type": "token",
                    "objectId": "guid-ann",
                    "tokenData": {"id": "apns-ann-tablet", "type": "apns"},
                },
            ]
            uploaded = _post(suite.url, "/1/upload", {"d": records})
            assert uploaded.json()["processed"] == 3, uploaded.text
            campaign = {
                "name": "all devices",
                "target_mode": "push",
                "to": {"Identity": ["ann"]},
                "send_to_all_devices": True,
                "content": {"title": "Hi", "body": "News"},
            }
            today = int(time.strftime("%Y%m%d", time.gmtime()))
            # Ready once the tokens are stored (under o:guid-ann) and that key counts as Ann: only then is the
            # user who uploaded tokens today the one whose profile says Name=Ann. ("Every user is one person"
            # is no such proof: the count of all users can read 1 before the token events are visible.)
            tokens_of_ann = {
                "event_name": "__push_token",
                "from": today,
                "to": today,
                "common_profile_properties": {
                    "profile_fields": [{"name": "Name", "operator": "equals", "value": "Ann"}]
                },
            }
            _wait(
                lambda: _reach(suite.url, tokens_of_ann) == 1 and _reach(suite.url, {}) == 1,
                "the tokens and the merge to reach the warehouse",
            )
            created = _post(suite.url, "/1/targets/create.json", campaign)
            assert created.status_code == 200, created.text
            _wait(
                lambda: (
                    _post(suite.url, "/1/targets/result.json", {"id": created.json()["id"]}).status_code
                    == 200
                ),
                "the campaign to complete",
            )
            result = _post(suite.url, "/1/targets/result.json", {"id": created.json()["id"]}).json()["result"]
        finally:
            suite.stop()
    assert [r.json()["message"]["token"] for r in fcm.requests] == ["fcm-ann-phone"]
    assert [r.path for r in apns.requests] == ["/3/device/apns-ann-tablet"]
    assert result["sent"] == 2

"""Device tokens uploaded through ``/1/upload`` reach every device: the real gateway, loader and messaging
(``tapwire up``) against FCM-HTTP-v1- and APNs-shaped receivers on 127.0.0.1.

CleverTap takes token records by ``objectId`` only, while the profile names the user by ``identity`` too; the
identity graph links the two keys, and the push follows the link to both of the user's devices.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.suite_api import AccountApi
from tests.integration.processes import TapwireProcess
from tests.messaging.push_every_device import push_to_every_device
from tests.messaging.push_receivers import push_providers

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-PUSH-0001", "passcode-push-0123456789abcdef"


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
            api = AccountApi(suite.url, ACCOUNT, PASSCODE)
            uploaded = api.post("/1/upload", {"d": records})
            assert uploaded.json()["processed"] == 3, uploaded.text
            result = push_to_every_device(
                api,
                identity="ann",
                name="Ann",
                what="the tokens and the merge to reach the warehouse",
                timeout_s=90,
            )
        finally:
            suite.stop()
    assert [r.json()["message"]["token"] for r in fcm.requests] == ["fcm-ann-phone"]
    assert [r.path for r in apns.requests] == ["/3/device/apns-ann-tablet"]
    assert result["sent"] == 2

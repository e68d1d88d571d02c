"""Push tokens the mobile SDKs register through ``/a1`` reach messaging: ``tapwire up`` with FCM-HTTP-v1- and
APNs-shaped receivers on 127.0.0.1. Requests are built as the SDK sources build them (see
``tests/websdk/mobile_requests.py``): the Android app (``PushProviders.pushDeviceTokenEvent``, an FCM token) and
the iOS app (``CleverTap.m pushDeviceToken:forRegisterAction:``, an APNs token) of one person, who logs in on
both with ``onUserLogin`` (a profile naming ``Identity``); a push campaign to that identity reaches both devices.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from tests.infra.suite_api import AccountApi
from tests.integration.processes import TapwireProcess
from tests.messaging.push_every_device import push_to_every_device
from tests.messaging.push_receivers import push_providers
from tests.websdk import mobile_requests as sdk

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE, TOKEN = "TAP-MOBILE-01", "passcode-mobile-0123456789ab", "writekey-mobile-0123456789ab"
SESSION = 1_765_000_000


def _send_queue(url: str, os_name: str, device: str, token: str, token_type: str) -> None:
    hello = httpx.get(
        f"{url}/hello", params=sdk.query(ACCOUNT, os=os_name), headers=sdk.headers(ACCOUNT, TOKEN)
    )
    assert hello.status_code == 200, hello.text
    body = sdk.body(
        sdk.meta_header(ACCOUNT, TOKEN, device, os_name=os_name),
        sdk.event("App Launched", {}, session=SESSION),
        sdk.profile({"Identity": "ann", "Name": "Ann"}, session=SESSION),
        sdk.push_token(token, token_type, session=SESSION),
    )
    sent = httpx.post(
        f"{url}/a1",
        params=sdk.query(ACCOUNT, os=os_name),
        headers=sdk.headers(ACCOUNT, TOKEN),
        content=orjson.dumps(body),
        timeout=30,
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["processed"] == 3


def test_tokens_registered_by_both_apps_reach_each_device(tmp_path: Path) -> None:
    with push_providers(tmp_path) as providers:
        fcm, apns = providers.fcm, providers.apns
        env = providers.env | {
            "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:{TOKEN}",
            "TAPWIRE_MESSAGING_SECRET": "mobile-test-secret-0123456789abcdef",
            "TAPWIRE_LOG_LEVEL": "WARNING",
            "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
        }
        suite = TapwireProcess(["up"], env, tmp_path / "suite.log").start()
        try:
            suite.wait_ready(timeout_s=180)
            _send_queue(suite.url, "Android", "__a1b2c3d4e5f60718293a4b5c6d7e8f90", "fcm-ann-pixel", "fcm")
            _send_queue(suite.url, "iOS", "-0F1E2D3C4B5A69788796A5B4C3D2E1F0", "apns-ann-iphone", "apns")
            result = push_to_every_device(
                AccountApi(suite.url, ACCOUNT, PASSCODE),
                identity="ann",
                name="Ann",
                what="the tokens and the logins to reach the warehouse",
                timeout_s=180,
            )
        finally:
            suite.stop()
    assert [r.json()["message"]["token"] for r in fcm.requests] == ["fcm-ann-pixel"]
    assert [r.path for r in apns.requests] == ["/3/device/apns-ann-iphone"]
    assert result["sent"] == 2

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

from tests.infra.privacy_suite import erase_and_wait, fast_privacy_suite
from tests.infra.suite_api import AccountApi, wait_for
from tests.websdk.requests import event, profile, sdk_url
from tests.websdk.sdk_encoder import SdkEncoder

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE = "TAP-WEBPRIV-01", "passcode-webpriv-0123456789"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[AccountApi]:
    accounts = f"{ACCOUNT}:{PASSCODE}:writekey-webpriv-0123456789"
    with fast_privacy_suite(tmp_path, accounts=accounts, ready_timeout_s=180) as suite:
        yield AccountApi(suite.url, ACCOUNT, PASSCODE)


def _wait(check: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    wait_for(check, what, timeout_s=timeout_s, poll_s=0.2)


def _count(api: AccountApi, name: str) -> int:
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)
    return api.event_count(name, days=(f"{today - day:%Y%m%d}", f"{today + day:%Y%m%d}"))


def test_erasure_removes_the_device_ids_and_what_they_sent(api: AccountApi) -> None:
    url = api.url
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
        _wait(lambda: _count(api, "Browsed") == 3, "the events to load")
        _wait(lambda: api.profile_status(objectId="zoe-phone") == 200, "the devices to count as Zoe")

        erase_and_wait(api, "zoe", timeout_s=180)
        assert _count(api, "Browsed") == 1
        for device in ("zoe-laptop", "zoe-phone"):
            assert api.profile_status(objectId=device) == 404
        assert api.profile_status(identity="zoe") == 404
        assert api.profile_status(objectId="yan-laptop") == 200

        # The erased browsers keep sending until their cookies go: answered, never stored.
        send(event("Browsed", {"n": 5}), "zoe-laptop", 3)
        send(event("Browsed", {"n": 10}), "yan-laptop", 2)
        _wait(lambda: _count(api, "Browsed") == 2, "the other visitor's event")
        time.sleep(1)
        assert _count(api, "Browsed") == 2

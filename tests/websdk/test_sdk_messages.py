"""In-app and inbox messages sent by campaigns through ``tapwire up`` reach CleverTap's own SDKs, unchanged:

- the published ``clevertap-web-sdk`` in Debian's headless Chromium (TLS and host mapping as in
  ``test_websdk_browser``) shows an in-app popup and an inbox entry, reports them viewed when shown, and clicked
  (the popup through its tracked link, the inbox entry by the SDK's own event); all of it is queryable by
  campaign, and the popup is delivered once;
- an ``/a1`` answer carries the messages in the shape the Android SDK reads (``tests/websdk/android_campaigns``),
  once, and again only to a retry of the same request;
- a person who opted out or was erased gets nothing, whether the message waited before or was sent after.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from tests.integration.processes import TapwireProcess, free_port
from tests.websdk import android_campaigns, mobile_requests
from tests.websdk.cdp import Chromium
from tests.websdk.requests import event, profile, sdk_url
from tests.websdk.sdk_encoder import SdkEncoder
from tests.websdk.tls import self_signed, tls_proxy

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE, WRITE_KEY = "TAP-SDKMSG-01", "passcode-sdkmsg-0123456789", "writekey-sdkmsg-0123456789"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
SDK_HOST = "eu1.tapwire.test"
PAGE_HOST = "shop.tapwire.test"
HERE = Path(__file__).resolve().parent
SDK = HERE.parent / "clients" / "node_modules" / "clevertap-web-sdk"
CLI = (sys.executable, "-m", "tapwire_services.cli")
TR_CALL = re.compile(r"window\.\$WZRK_WR&&window\.\$WZRK_WR\.tr\((.*)\);$", re.MULTILINE)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TapwireProcess]:
    work = tmp_path_factory.mktemp("sdk-messages")
    proc = TapwireProcess(
        ["up"],
        env={
            "TAPWIRE_DATA_DIR": str(work / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:{WRITE_KEY}",
            "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
            "TAPWIRE_PRIVACY_POLL_S": "0.2",
            "TAPWIRE_PRIVACY_SWEEP_DELAY_S": "1",
            "TAPWIRE_EMBEDDED_LOG_RETENTION_HOURS": "0.002",
            "TAPWIRE_PRIVACY_SUPPRESSION_REFRESH_S": "0.2",
        },
        log_path=work / "tapwire.log",
    ).start()
    try:
        proc.wait_ready(timeout_s=180)
        # The operator gives the account a web inbox, opened by the page element #inbox-bell.
        done = subprocess.run(
            [*CLI, "accounts", "client-sdk", ACCOUNT, "--web-inbox-selector", "inbox-bell"],
            env=os.environ | {"TAPWIRE_DATA_DIR": str(work / "data")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0 and "web inbox on #inbox-bell" in done.stdout, done.stdout + done.stderr
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def encoder() -> Iterator[SdkEncoder]:
    with SdkEncoder() as running:
        yield running


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    assert (SDK / "clevertap.js").is_file(), (
        "clevertap-web-sdk missing: `make test` runs npm ci in tests/clients"
    )
    root = tmp_path_factory.mktemp("site")
    shutil.copy(HERE / "browser" / "messages.html", root / "messages.html")
    (root / "sdk").symlink_to(SDK)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(_QuietHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chromium(tmp_path: Path, suite: TapwireProcess, page_server: int) -> Iterator[Chromium]:
    certificate = self_signed(tmp_path, SDK_HOST)
    with tls_proxy(certificate, suite.port) as tls_port:
        flags = [
            f"--host-resolver-rules=MAP {SDK_HOST} 127.0.0.1:{tls_port}, MAP {PAGE_HOST} 127.0.0.1:{page_server}",
            f"--ignore-certificate-errors-spki-list={certificate.spki_sha256}",
        ]
        with Chromium(tmp_path / "chromium", flags) as browser:
            yield browser


def _page(port: int, **params: str) -> str:
    return f"http://{PAGE_HOST}:{port}/messages.html?{urlencode({'account': ACCOUNT, **params})}"


def _eventually(read: Callable[[], Any], ok: Callable[[Any], bool], what: str, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = read()
        if ok(value):
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: last seen {value}")


def _campaign(url: str, channel: str, identity: str, content: dict[str, str]) -> int:
    body = {"name": f"{channel} for {identity}", "channel": channel, "to": {"Identity": [identity]}}
    response = httpx.post(f"{url}/messaging/v1/campaigns", headers=HEADERS, json=body | {"content": content})
    assert response.status_code == 201, response.text
    campaign_id: int = response.json()["id"]
    return campaign_id


def _figures(url: str, campaign_id: int) -> dict[str, Any]:
    response = httpx.get(f"{url}/messaging/v1/campaigns/{campaign_id}", headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    figures: dict[str, Any] = response.json()["campaign"]
    return figures


def _queued(url: str, campaign_id: int) -> dict[str, Any]:
    figures: dict[str, Any] = _eventually(
        lambda: _figures(url, campaign_id), lambda f: f["sent"] == 1, f"campaign {campaign_id} sent"
    )
    return figures


def _count(url: str, name: str, campaign_id: int) -> int:
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)
    body = {
        "event_name": name,
        "from": f"{today - day:%Y%m%d}",
        "to": f"{today + day:%Y%m%d}",
        "event_properties": [{"name": "campaign_id", "value": campaign_id}],
    }
    response = httpx.post(f"{url}/1/counts/events.json", headers=HEADERS, json=body, timeout=30)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


def test_the_web_sdk_shows_a_popup_and_an_inbox_entry_and_reports_them(
    chromium: Chromium, suite: TapwireProcess, page_server: int
) -> None:
    run = uuid.uuid4().hex[:8]
    ann = f"ann-{run}"
    report = chromium.text_when(_page(page_server, step="login", user=ann), "out", "done:")
    device = report.removeprefix("done:").split(":")[0]
    assert len(device) == 32 and ":popup=no:" in report

    landing = _page(page_server, step="landed")
    popup = _campaign(
        suite.url,
        "inapp",
        ann,
        {"title": "<b>Sale</b> & more for {{ Profile.Name }}", "body": "Half price today", "url": landing},
    )
    inbox = _campaign(
        suite.url,
        "inbox",
        ann,
        {"title": "Your receipt", "body": "Order {{ Campaign.id }} is on its way", "url": landing},
    )
    _queued(suite.url, popup)
    _queued(suite.url, inbox)

    # The SDK renders both; the page opens the inbox (the entry is viewed) and clicks the popup, whose tracked
    # link counts the click and leads to the landing page.
    _past_the_filter_refresh()
    landed = chromium.text_when(_page(page_server, step="messages"), "out", "landed:", timeout_s=120)
    seen = json.loads(landed.removeprefix("landed:"))
    assert "<b>Sale</b> & more for Ann" in seen["popup"] and "Half price today" in seen["popup"]
    assert seen["popupElements"] == 0, "the texts are shown as text, not as markup"
    assert seen["inbox"] == [{"title": "Your receipt", "description": f"Order {inbox} is on its way"}]

    # The inbox entry, kept by the browser, clicked on a later page: the SDK reports the click, and leads on.
    clicked = chromium.text_when(_page(page_server, step="inbox-click"), "out", "landed:", timeout_s=120)
    assert json.loads(clicked.removeprefix("landed:")) == {"inbox": ["Your receipt"]}

    for campaign_id in (popup, inbox):
        for name in ("Notification Delivered", "Notification Viewed", "Notification Clicked"):
            _eventually(
                functools.partial(_count, suite.url, name, campaign_id),
                lambda n: n >= 1,
                f"{name} of {campaign_id}",
            )
        figures = _eventually(
            functools.partial(_figures, suite.url, campaign_id),
            lambda f: f["viewed"] == 1 and f["clicked"] == 1,
            f"the figures of {campaign_id}",
        )
        assert figures["sent"] == 1

    # Delivered once: a later page load shows no popup again (the inbox keeps its entry in the browser).
    again = chromium.text_when(_page(page_server, step="plain"), "out", "done:")
    assert again == f"done:{device}:popup=no:inbox=1"
    for campaign_id in (popup, inbox):
        assert _count(suite.url, "Notification Delivered", campaign_id) == 1


def _past_the_filter_refresh() -> None:
    """A gateway sees a newly queued message at its filter's next update, about a second later (docs/sdks.md);
    a request before that gets nothing yet, as it should. Two update periods and a margin."""
    time.sleep(2.5)


def _tr(response: httpx.Response) -> dict[str, Any] | None:
    assert response.status_code == 200, response.text
    match = TR_CALL.search(response.text)
    return None if match is None else dict(json.loads(match.group(1)))


def _a1(url: str, device: str, *items: dict[str, Any]) -> httpx.Response:
    header = mobile_requests.meta_header(ACCOUNT, WRITE_KEY, device)
    return httpx.post(
        f"{url}/a1",
        params=mobile_requests.query(ACCOUNT),
        headers=mobile_requests.headers(ACCOUNT, WRITE_KEY),
        content=orjson.dumps(mobile_requests.body(header, *items)),
        timeout=30,
    )


def test_the_mobile_answer_carries_the_messages_in_the_android_sdks_shape(suite: TapwireProcess) -> None:
    run = uuid.uuid4().hex[:8]
    bea, device = f"bea-{run}", f"phone-{run}"
    login = _a1(suite.url, device, mobile_requests.profile({"Identity": bea}, session=1))
    assert login.status_code == 200 and "inbox_notifs" not in login.json(), login.text
    popup = _campaign(
        suite.url,
        "inapp",
        bea,
        {"title": "Flash sale", "body": "Ends at noon", "url": "https://shop.example/sale", "button": "Shop"},
    )
    inbox = _campaign(
        suite.url,
        "inbox",
        bea,
        {
            "title": "Welcome",
            "body": "Hi",
            "icon": "https://cdn.example/i.png",
            "url": "https://shop.example/",
        },
    )
    _queued(suite.url, popup)
    _queued(suite.url, inbox)

    # Gateways see a queued message within a second; until then the app's requests get nothing.
    tries = iter(range(1000))

    def launch() -> tuple[dict[str, Any], dict[str, Any]]:
        item = mobile_requests.event("App Launched", {"try": next(tries)}, session=2)
        answer = _a1(suite.url, device, item)
        assert answer.status_code == 200, answer.text
        return item, dict(answer.json())

    launched, body = _eventually(launch, lambda got: "inapp_notifs" in got[1], "the messages", timeout_s=30)
    (in_app,) = [android_campaigns.in_app(n) for n in body["inapp_notifs"]]
    assert (
        in_app["type"] == "interstitial"
        and in_app["title"] == "Flash sale"
        and in_app["message"] == "Ends at noon"
    )
    assert in_app["buttons"] == [{"text": "Shop", "url": "https://shop.example/sale", "action": "url"}]
    assert in_app["wzrk_id"].split("_")[0] == str(popup) and in_app["exclude_from_caps"]
    assert in_app["ttl"] > time.time()
    (entry,) = [android_campaigns.inbox_message(m) for m in body["inbox_notifs"]]
    assert entry["type"] == "message-icon" and entry["wzrk_id"].split("_")[0] == str(inbox)
    assert entry["content"] == [
        {
            "title": "Welcome",
            "message": "Hi",
            "icon": "https://cdn.example/i.png",
            "action_url": "https://shop.example/",
        }
    ]
    assert entry["date"] <= time.time() < entry["expires"]

    # The same request again (its answer lost) gets them again; the next request nothing.
    assert _a1(suite.url, device, launched).json()["inbox_notifs"] == body["inbox_notifs"]
    later = _a1(suite.url, device, mobile_requests.event("Browsed", {}, session=2)).json()
    assert "inapp_notifs" not in later and "inbox_notifs" not in later

    # The app reports the in-app shown and the inbox entry opened, as the SDK does, with the message's wzrk_id.
    viewed = mobile_requests.event("Notification Viewed", {"wzrk_id": in_app["wzrk_id"]}, session=2)
    opened = mobile_requests.event("Notification Clicked", {"wzrk_id": entry["wzrk_id"]}, session=2)
    assert _a1(suite.url, device, viewed, opened).status_code == 200
    _eventually(
        lambda: _count(suite.url, "Notification Viewed", popup), lambda n: n == 1, "the in-app viewed"
    )
    _eventually(
        lambda: _count(suite.url, "Notification Clicked", inbox), lambda n: n == 1, "the inbox clicked"
    )
    assert _figures(suite.url, popup)["viewed"] == 1 and _figures(suite.url, inbox)["clicked"] == 1
    assert _count(suite.url, "Notification Delivered", popup) == 1


def test_opted_out_and_erased_people_get_nothing(suite: TapwireProcess, encoder: SdkEncoder) -> None:
    run = uuid.uuid4().hex[:8]
    url = suite.url
    rn = iter(range(1, 100))

    def web(device: str, body: dict[str, Any], **extra: str) -> dict[str, Any] | None:
        target = sdk_url(
            encoder, "push", body, account_id=ACCOUNT, device_id=device, rn=next(rn), extra=extra
        )
        return _tr(httpx.get(url + target, timeout=30))

    people = {"opted": f"olga-{run}", "erased": f"zed-{run}", "kept": f"kim-{run}"}
    for person in people.values():
        web(f"{person}-laptop", profile({"Identity": person, "Run": run}, login=True))
    # A campaign to a segment (the three of them, by a profile property) queues a message for each.
    segment = {
        "common_profile_properties": {"profile_fields": [{"name": "Run", "operator": "equals", "value": run}]}
    }
    body = {
        "name": f"everyone {run}",
        "channel": "inbox",
        "where": segment,
        "content": {"title": "For everyone"},
    }
    estimate = body | {"estimate_only": True}

    def reach() -> int:
        answer = httpx.post(f"{url}/messaging/v1/campaigns", headers=HEADERS, json=estimate, timeout=30)
        assert answer.status_code == 200, answer.text
        found: int = answer.json()["estimate"]["reach"]
        return found

    _eventually(reach, lambda n: n == 3, "the segment's members")
    body = {
        "name": f"everyone {run}",
        "channel": "inbox",
        "where": segment,
        "content": {"title": "For everyone"},
    }
    created = httpx.post(f"{url}/messaging/v1/campaigns", headers=HEADERS, json=body, timeout=30)
    assert created.status_code == 201, created.text
    waiting: int = created.json()["id"]
    _eventually(functools.partial(_figures, url, waiting), lambda f: f["sent"] == 3, "the segment campaign")

    # Olga opts out (the SDK's privacy record); Zed is erased. Each had the segment's message waiting.
    web(f"{people['opted']}-laptop", profile({"ct_optout": True}), optOut="true")
    erased = httpx.post(f"{url}/1/delete/profiles.json", headers=HEADERS, json={"identity": people["erased"]})
    assert erased.status_code == 200, erased.text
    request_id = erased.json()["requests"][0]["id"]
    _eventually(
        lambda: httpx.get(f"{url}/privacy/v1/requests/{request_id}", headers=HEADERS, timeout=10).json()[
            "status"
        ],
        lambda status: status == "completed",
        "the erasure",
    )
    later = {
        who: _campaign(url, "inbox", person, {"title": f"Later for {who}"}) for who, person in people.items()
    }
    _queued(url, later["kept"])
    for who in ("opted", "erased"):
        _eventually(
            functools.partial(_figures, url, later[who]),
            lambda f: f["suppressed"] == 1,
            f"{who}'s later message",
        )

    _past_the_filter_refresh()
    # The person kept gets both messages (so the gateway's filter knows what waits by now) ...
    kept = _eventually(
        lambda: web(f"{people['kept']}-laptop", event("Browsed", {"n": 1})),
        lambda answer: answer is not None and "inbox_notifs" in answer,
        "the kept person's messages",
        timeout_s=30,
    )
    assert sorted(e["msg"][0]["title"] for e in kept["inbox_notifs"]) == ["For everyone", "Later for kept"]
    # ... and the others nothing, on the web or in an app.
    for who in ("opted", "erased"):
        answer = web(f"{people[who]}-laptop", event("Browsed", {"n": 1}))
        assert answer is None or "inbox_notifs" not in answer, (who, answer)
        mobile = _a1(url, f"{people[who]}-laptop", mobile_requests.event("Browsed", {}, session=1)).json()
        assert "inbox_notifs" not in mobile, (who, mobile)
    _eventually(
        functools.partial(_count, url, "Notification Delivered", waiting), lambda n: n == 1, "the delivery"
    )
    time.sleep(1)
    assert _count(url, "Notification Delivered", waiting) == 1, (
        "only the person kept got the segment's message"
    )


def test_a_triggered_campaign_puts_its_message_in_the_apps_inbox(suite: TapwireProcess) -> None:
    """A behaviour-triggered campaign on the inbox channel: the event's firing queues the message, and the app's
    next request gets it, with the event's data rendered."""
    run = uuid.uuid4().hex[:8]
    cid, device = f"cid-{run}", f"tablet-{run}"
    body = {
        "name": f"abandoned cart {run}",
        "channel": "inbox",
        "trigger": {"event": f"Cart Abandoned {run}"},
        "content": {"title": "Still thinking about {{ Event.product }}?", "url": "https://shop.example/cart"},
    }
    created = httpx.post(f"{suite.url}/messaging/v1/campaigns", headers=HEADERS, json=body, timeout=30)
    assert created.status_code == 201, created.text
    campaign_id: int = created.json()["id"]
    assert _a1(suite.url, device, mobile_requests.profile({"Identity": cid}, session=1)).status_code == 200
    fired = mobile_requests.event(f"Cart Abandoned {run}", {"product": "Red Shoes"}, session=1)
    assert _a1(suite.url, device, fired).status_code == 200
    _eventually(lambda: _figures(suite.url, campaign_id), lambda f: f["sent"] == 1, "the triggered message")

    def inbox() -> list[dict[str, Any]]:
        answer = _a1(suite.url, device, mobile_requests.event("Browsed", {}, session=1)).json()
        return [android_campaigns.inbox_message(m) for m in answer.get("inbox_notifs", [])]

    (entry,) = _eventually(inbox, lambda entries: len(entries) == 1, "the inbox message", timeout_s=30)
    assert entry["content"][0]["title"] == "Still thinking about Red Shoes?"
    assert entry["wzrk_id"].startswith(f"{campaign_id}_")


def test_frequency_caps_count_in_app_and_inbox_messages(suite: TapwireProcess) -> None:
    """A cap across channels counts an in-app message already queued: the inbox message over the cap is
    ``capped``, and the app gets the in-app alone."""
    run = uuid.uuid4().hex[:8]
    dee, device = f"dee-{run}", f"watch-{run}"
    assert _a1(suite.url, device, mobile_requests.profile({"Identity": dee}, session=1)).status_code == 200
    first = _campaign(suite.url, "inapp", dee, {"title": "First"})
    _queued(suite.url, first)
    body = {
        "name": f"capped {run}",
        "channel": "inbox",
        "to": {"Identity": [dee]},
        "content": {"title": "Second"},
        "caps": [{"limit": 1, "window_s": 3600, "channel": "all"}],
    }
    created = httpx.post(f"{suite.url}/messaging/v1/campaigns", headers=HEADERS, json=body, timeout=30)
    assert created.status_code == 201, created.text
    _eventually(
        functools.partial(_figures, suite.url, created.json()["id"]), lambda f: f["capped"] == 1, "the cap"
    )
    answer = _eventually(
        lambda: _a1(suite.url, device, mobile_requests.event("Browsed", {}, session=1)).json(),
        lambda got: "inapp_notifs" in got,
        "the in-app message",
        timeout_s=30,
    )
    assert [n["title"]["text"] for n in answer["inapp_notifs"]] == ["First"] and "inbox_notifs" not in answer

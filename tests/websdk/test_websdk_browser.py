"""The published ``clevertap-web-sdk`` (pinned in tests/clients), unchanged, in Debian's headless Chromium against
``tapwire up`` behind TLS: a self-signed certificate made here, a TLS proxy in front of tapwire, and Chromium
mapping the SDK's host ``eu1.tapwire.test`` to it and accepting that certificate by its public key.

One browser profile (cookies and local storage kept between page loads) goes through a visitor's life: anonymous
page loads and a burst of events pushed before the first answer, a login, a profile push, a second person logging
in on the same browser, an opt-out; each page reports the device id the SDK holds once its queue is answered.
Everything is then read back through the query API.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import os
import shutil
import socket
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
import pytest

from tests.integration.processes import TapwireProcess, free_port
from tests.websdk.cdp import Chromium
from tests.websdk.tls import self_signed, tls_proxy

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE, WRITE_KEY = "TAP-WEBSDK-01", "passcode-websdk-0123456789ab", "writekey-websdk-0123456789ab"
PUSH_ACCOUNT, PUSH_PASSCODE = "TAP-WEBSDK-02", "passcode-websdk-push-0123456789"
VAPID_KEY = "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
SDK_HOST = "eu1.tapwire.test"
PAGE_HOST = "shop.tapwire.test"
HERE = Path(__file__).resolve().parent
SDK = HERE.parent / "clients" / "node_modules" / "clevertap-web-sdk"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TapwireProcess]:
    work = tmp_path_factory.mktemp("websdk-suite")
    proc = TapwireProcess(
        ["up"],
        env={
            "TAPWIRE_DATA_DIR": str(work / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:{WRITE_KEY},{PUSH_ACCOUNT}:{PUSH_PASSCODE}:{WRITE_KEY}-push",
            "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
        },
        log_path=work / "tapwire.log",
    ).start()
    try:
        proc.wait_ready(timeout_s=180)
        # The operator turns web push on for the second account, before any of its requests.
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tapwire_services.cli",
                "accounts",
                "client-sdk",
                PUSH_ACCOUNT,
                "--web-push-key",
                VAPID_KEY,
            ],
            env=os.environ | {"TAPWIRE_DATA_DIR": str(work / "data")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0 and "web push on" in done.stdout, done.stdout + done.stderr
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The site: the test page and the SDK's script from the installed package, over plain HTTP."""
    assert (SDK / "clevertap.js").is_file(), (
        "clevertap-web-sdk missing: `make test` runs npm ci in tests/clients"
    )
    root = tmp_path_factory.mktemp("site")
    shutil.copy(HERE / "browser" / "websdk.html", root / "index.html")
    shutil.copy(HERE / "browser" / "clevertap_sw.js", root / "clevertap_sw.js")
    (root / "sdk").symlink_to(SDK)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class Browser:
    """Headless Chromium with one profile, kept between page loads as a visitor's browser keeps it."""

    def __init__(self, chromium: Chromium, *, page_port: int) -> None:
        self.chromium = chromium
        self.page_port = page_port

    def visit(self, *, host: str = PAGE_HOST, account: str = ACCOUNT, **params: str) -> str:
        """Load the page from ``host`` with ``params``; the device id the SDK holds when it reports done."""
        url = f"http://{host}:{self.page_port}/index.html?{urlencode({'account': account, **params})}"
        report = self.chromium.text_when(url, "out", "done:")
        return report.removeprefix("done:").split(":backlog=")[0]


@pytest.fixture
def browser(tmp_path: Path, suite: TapwireProcess, page_server: int) -> Iterator[Browser]:
    certificate = self_signed(tmp_path, SDK_HOST)
    with tls_proxy(certificate, suite.port) as tls_port:
        flags = [
            f"--host-resolver-rules=MAP {SDK_HOST} 127.0.0.1:{tls_port}, MAP {PAGE_HOST} 127.0.0.1:{page_server}",
            f"--ignore-certificate-errors-spki-list={certificate.spki_sha256}",
        ]
        with Chromium(tmp_path / "chromium", flags) as chromium:
            yield Browser(chromium, page_port=page_server)


def _eventually(read: Callable[[], Any], ok: Callable[[Any], bool], what: str, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = read()
        if ok(value):
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: last seen {value}")


def profile(url: str, identity: str) -> dict[str, Any] | None:
    response = httpx.get(f"{url}/1/profile.json", params={"identity": identity}, headers=HEADERS, timeout=10)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["record"]
    return record


def event_count(url: str, name: str, **filters: Any) -> int:
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)
    body = {"event_name": name, "from": f"{today - day:%Y%m%d}", "to": f"{today + day:%Y%m%d}", **filters}
    response = httpx.post(f"{url}/1/counts/events.json", headers=HEADERS, json=body, timeout=30)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


def events_of(url: str, identity: str) -> dict[str, int]:
    record = profile(url, identity)
    return {} if record is None else {name: e["count"] for name, e in record["events"].items()}


def test_a_visitor_anonymous_then_logged_in_then_another_person_then_opted_out(
    browser: Browser, suite: TapwireProcess
) -> None:
    run = uuid.uuid4().hex[:8]
    label = f"web-{run}"
    ann, bob = f"ann-{run}", f"bob-{run}"

    anonymous = browser.visit(step="anonymous", label=label)
    assert len(anonymous) == 32
    login = browser.visit(step="login", label=label, user=ann, email=f"{ann}@example.org")
    assert login == anonymous, "a login on an anonymous browser keeps its device id"
    browser.visit(step="profile", label=label)

    # Everything the browser sent before and after the login is Ann's: the burst held back until the first
    # answer (all ten), the purchase, both page loads, the event after the login.
    expected = {f"{label} Burst": 10, "Charged": 1, "Page Viewed": 3, f"{label} After Login": 1}
    seen = _eventually(
        lambda: events_of(suite.url, ann),
        lambda got: all(got.get(name) == count for name, count in expected.items()),
        "Ann's events",
    )
    assert set(seen) == set(expected)
    record = _eventually(
        lambda: profile(suite.url, ann),
        lambda r: r is not None and r["profileData"].get("Score") == 10,
        "Ann's profile push",
    )
    assert record["profileData"]["Favourite Colour"] == "green"
    assert record["profileData"]["Name"] == "Ann"
    assert record["email"] == f"{ann}@example.org"
    # Charged items through CQL.
    items = {"event_properties": [{"name": "Items.Product", "operator": "equals", "value": f"{label} Sock"}]}
    assert (
        _eventually(lambda: event_count(suite.url, "Charged", **items), lambda n: n == 1, "Charged by item")
        == 1
    )

    # Bob logs in on the same browser: a new device id, his own profile; nothing of Ann's is his.
    bobs_device = browser.visit(step="second-user", label=label, user=bob)
    assert bobs_device != anonymous and len(bobs_device) == 32
    seen = _eventually(
        lambda: events_of(suite.url, bob), lambda got: got.get(f"{label} Second User") == 1, "Bob's events"
    )
    assert f"{label} Burst" not in seen and f"{label} After Login" not in seen
    assert f"{label} Second User" not in events_of(suite.url, ann)

    # Bob opts out: the SDK holds the marked id, and nothing it would send afterwards is stored.
    assert browser.visit(step="opt-out", label=label) == f"{bobs_device}:OO"
    assert browser.visit(step="after-opt-out", label=label) == f"{bobs_device}:OO"
    time.sleep(2)
    assert event_count(suite.url, f"{label} After Opt Out") == 0


def test_the_fetch_variant_of_the_sdk(browser: Browser, suite: TapwireProcess) -> None:
    label = f"fetch-{uuid.uuid4().hex[:8]}"
    device = browser.visit(step="anonymous", label=label, fetch="1")
    assert len(device) == 32
    _eventually(lambda: event_count(suite.url, f"{label} Burst"), lambda n: n == 10, "events sent with fetch")


def test_a_web_push_subscription_is_stored_as_the_devices_token(
    browser: Browser, suite: TapwireProcess
) -> None:
    """The account has a VAPID key, so the page load's answer tells the SDK web push is on; the site asked for
    push (``notifications.push`` with ``skipDialog``), and the SDK registers the subscription. The page is
    served from localhost, a secure context, as service workers require."""
    token = f"web-push-{uuid.uuid4().hex[:12]}"
    device = browser.visit(host="localhost", account=PUSH_ACCOUNT, step="web-push", label="push", token=token)
    headers = {"X-CleverTap-Account-Id": PUSH_ACCOUNT, "X-CleverTap-Passcode": PUSH_PASSCODE}
    today = dt.datetime.now(dt.UTC).date()
    body = {
        "event_name": "__push_token",
        "from": f"{today - dt.timedelta(days=1):%Y%m%d}",
        "to": f"{today + dt.timedelta(days=1):%Y%m%d}",
        "event_properties": [{"name": "id", "operator": "equals", "value": token}],
    }

    def tokens() -> int:
        response = httpx.post(f"{suite.url}/1/counts/events.json", headers=headers, json=body, timeout=30)
        assert response.status_code == 200, response.text
        count: int = response.json()["count"]
        return count

    _eventually(tokens, lambda n: n == 1, "the web push subscription")
    assert len(device) == 32


def _raw_get(port: int, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            b"GET " + target + b" HTTP/1.1\r\nHost: eu1.tapwire.test\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_long_urls_through_the_real_server_are_refused_never_a_500(suite: TapwireProcess) -> None:
    """Past ``TAPWIRE_SDK_MAX_QUERY_BYTES`` (48 KiB) tapwire's JSON 413; past the HTTP parser's own limit on
    a request line (about 64 KiB) the server's plain 400. Either way the server goes on serving."""
    long = _raw_get(suite.port, b"/a?t=96&type=push&d=" + b"A" * 50_000)
    assert long.startswith(b"HTTP/1.1 413 "), long[:200]
    assert b'"code":413' in long
    huge = _raw_get(suite.port, b"/a?t=96&type=push&d=" + b"A" * 1_000_000)
    assert huge == b"" or huge.startswith(b"HTTP/1.1 400 "), huge[:200]
    assert httpx.get(f"{suite.url}/healthz", timeout=10).status_code == 200

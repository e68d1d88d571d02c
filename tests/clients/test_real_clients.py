"""Published SDKs, unchanged, against ``tapwire up``: events and merged profiles come back through the query API.

Each client runs one scenario: a track by an anonymous visitor, a track under an earlier anonymous id, an
identify joining the visitor to a user id (with an email trait), a page view, and an alias joining the earlier
id. The profile read back by user id then holds all three events and the email: the identity merges are
honoured by queries. Needs ``npm ci`` in tests/clients and Debian's ``chromium`` (the Makefile installs both).
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.processes import TapwireProcess, free_port

pytestmark = pytest.mark.integration

ACCOUNT, PASSCODE, WRITE_KEY = (
    "TAP-SDK-0001",
    "passcode-sdk-0123456789abcdef",
    "writekey-sdk-0123456789abcdef",
)
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
CLIENTS = Path(__file__).resolve().parent
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TapwireProcess]:
    work = tmp_path_factory.mktemp("sdk-suite")
    proc = TapwireProcess(
        ["up"],
        env={
            "TAPWIRE_DATA_DIR": str(work / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:{WRITE_KEY}",
            "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
        },
        log_path=work / "tapwire.log",
    ).start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.kill()


class Scenario:
    def __init__(self, label: str) -> None:
        run = uuid.uuid4().hex[:8]
        self.label = f"{label}-{run}"
        self.user_id = f"{label}-user-{run}"
        self.anonymous_id = f"{label}-anon-{run}"
        self.previous_id = f"{label}-previous-{run}"

    @property
    def email(self) -> str:
        return f"{self.label}@example.org"

    def send_with(self, client: Any) -> None:
        """The scenario through a Python SDK client (Segment's and RudderStack's share this API)."""
        client.track(
            anonymous_id=self.anonymous_id, event=f"{self.label} Order Completed", properties={"revenue": 9.5}
        )
        client.track(anonymous_id=self.previous_id, event=f"{self.label} Signed Up")
        client.identify(self.user_id, {"email": self.email, "plan": "pro"}, anonymous_id=self.anonymous_id)
        client.page(self.user_id, "Docs", "Home", {"url": "http://127.0.0.1/home"})
        client.alias(self.previous_id, self.user_id)
        client.flush()


def profile(url: str, identity: str) -> dict[str, Any] | None:
    response = httpx.get(f"{url}/1/profile.json", params={"identity": identity}, headers=HEADERS, timeout=10)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["record"]
    return record


def wait_for_profile(
    url: str, scenario: Scenario, event_names: set[str], timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    record: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        record = profile(url, scenario.user_id)
        if record is not None and event_names <= set(record["events"]) and "Email" in record["profileData"]:
            return record
        time.sleep(0.3)
    raise AssertionError(f"profile of {scenario.user_id} incomplete after {timeout_s}s: {record}")


def count_today(url: str, name: str) -> int:
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)
    body = {"event_name": name, "from": f"{today - day:%Y%m%d}", "to": f"{today + day:%Y%m%d}"}
    response = httpx.post(f"{url}/1/counts/events.json", headers=HEADERS, json=body, timeout=10)
    assert response.status_code == 200, response.text
    value: int = response.json()["count"]
    return value


def assert_scenario_visible(url: str, scenario: Scenario) -> None:
    names = {f"{scenario.label} Order Completed", f"{scenario.label} Signed Up", "Page Viewed"}
    record = wait_for_profile(url, scenario, names)
    assert record["identity"] == scenario.user_id
    assert record["email"] == scenario.email
    assert record["profileData"]["Email"] == scenario.email
    assert record["profileData"]["plan"] == "pro"
    # The anonymous visitor's purchase (merged by identify) and the earlier id's sign-up (merged by alias).
    assert record["events"][f"{scenario.label} Order Completed"]["count"] == 1
    assert record["events"][f"{scenario.label} Signed Up"]["count"] == 1
    assert record["events"]["Page Viewed"]["count"] == 1
    assert count_today(url, f"{scenario.label} Order Completed") == 1


def test_segment_analytics_python(suite: TapwireProcess) -> None:
    from segment.analytics import Client

    errors: list[Any] = []
    scenario = Scenario("segment-py")
    client = Client(
        WRITE_KEY, host=suite.url, gzip=True, on_error=lambda e, batch: errors.append(e), max_retries=2
    )
    scenario.send_with(client)
    client.shutdown()
    assert errors == []
    assert_scenario_visible(suite.url, scenario)


def test_rudder_sdk_python(suite: TapwireProcess) -> None:
    from rudderstack.analytics import Client

    errors: list[Any] = []
    scenario = Scenario("rudder-py")
    client = Client(WRITE_KEY, host=suite.url, on_error=lambda e, batch: errors.append(e), max_retries=2)
    scenario.send_with(client)
    client.shutdown()
    assert errors == []
    assert_scenario_visible(suite.url, scenario)


def _node_modules() -> Path:
    modules = CLIENTS / "node_modules" / "@segment"
    assert (modules / "analytics-node").is_dir() and (modules / "analytics-next").is_dir(), (
        "npm packages missing: run `make test` (it runs `npm ci` in tests/clients)"
    )
    return modules


def test_segment_analytics_node(suite: TapwireProcess) -> None:
    _node_modules()
    scenario = Scenario("segment-node")
    done = subprocess.run(
        [
            "node",
            "send_node.mjs",
            suite.url,
            WRITE_KEY,
            scenario.user_id,
            scenario.anonymous_id,
            scenario.previous_id,
            scenario.label,
        ],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_scenario_visible(suite.url, scenario)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[str]:
    """The test page and analytics-next's browser bundle, on an origin other than tapwire's."""
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(CLIENTS / "browser" / "index.html", root / "index.html")
    (root / "analytics-next").symlink_to(_node_modules() / "analytics-next" / "dist" / "umd")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", free_port()), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_analytics_next_in_headless_chromium(suite: TapwireProcess, page_server: str) -> None:
    chromium = shutil.which("chromium")
    assert chromium is not None, "Debian's chromium is missing: `make test` installs it"
    scenario = Scenario("browser")
    # "localhost" rather than 127.0.0.1: another host name, so the page and tapwire are different origins.
    api = suite.url.replace("127.0.0.1", "localhost")
    query = f"key={WRITE_KEY}&api={api}&label={scenario.label}&user={scenario.user_id}"
    with tempfile.TemporaryDirectory(prefix="tapwire-chromium-") as profile_dir:
        done = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile_dir}",
                "--virtual-time-budget=30000",
                "--dump-dom",
                f"{page_server}/index.html?{query}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=os.environ | {"HOME": profile_dir},
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert '<pre id="out">sent:' in done.stdout, done.stdout[-3000:]
    record = None
    deadline = time.monotonic() + 60
    names = {f"{scenario.label} Button Clicked", "Page Viewed"}
    while time.monotonic() < deadline:
        record = profile(suite.url, scenario.user_id)
        if record is not None and names <= set(record["events"]):
            break
        time.sleep(0.3)
    assert record is not None, "the browser's events never reached the profile"
    # Page and track were sent before identify, under the anonymous id; identify merged them.
    assert record["events"][f"{scenario.label} Button Clicked"]["count"] == 1
    assert record["events"]["Page Viewed"]["count"] == 1
    assert record["profileData"]["Email"] == scenario.email

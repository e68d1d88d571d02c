"""The console in distributed mode: ``tapwire serve console`` renders its pages from the query, messaging and
privacy services over HTTP, beside a gateway and a loader on a real Kafka broker, with PostgreSQL as the control
store and ClickHouse reached over HTTP (the chDB-backed rig). A browser is played by an HTTP client that keeps
cookies and sends the same-origin headers a browser sends."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.credentials import CREDENTIAL_SECRET
from tests.integration.processes import TapwireProcess

ACCOUNT, PASSCODE = "TAP-DCON-0001", "passcode-dcon-0123456789abcdef"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
JAN_5 = 1_767_571_200
BACKENDS = ("gateway", "loader", "query", "messaging", "privacy-worker")

pytestmark = pytest.mark.integration


@pytest.fixture
def services(
    tmp_path: Path, kafka_broker: Any, fresh_postgres_url: str, clickhouse_database_url: str
) -> Iterator[dict[str, TapwireProcess]]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "TAPWIRE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "TAPWIRE_DATABASE_URL": fresh_postgres_url,
        "TAPWIRE_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
        "TAPWIRE_CLICKHOUSE_URL": clickhouse_database_url,
        "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:writekey-dcon-{suffix}-0123456789",
        "TAPWIRE_EVENTS_TOPIC": f"events-{suffix}",
        "TAPWIRE_DEAD_LETTER_TOPIC": f"events-dlq-{suffix}",
        "TAPWIRE_TOPIC_PARTITIONS": "2",
        "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
        "TAPWIRE_MESSAGING_SECRET": "distributed-console-messaging-0123456789",
        "TAPWIRE_DATA_DIR": str(tmp_path / "data"),
        "TAPWIRE_PRIVACY_POLL_S": "0.2",
        "TAPWIRE_LOG_LEVEL": "WARNING",
    }
    procs = {name: TapwireProcess(["serve", name], env, tmp_path / f"{name}.log") for name in BACKENDS}
    procs["console"] = TapwireProcess(
        ["serve", "console"],
        env
        | {
            "TAPWIRE_CONSOLE_SECRET": "distributed-console-cookie-secret-0123456789",
            "TAPWIRE_CONSOLE_QUERY_URL": procs["query"].url,
            "TAPWIRE_CONSOLE_MESSAGING_URL": procs["messaging"].url,
            "TAPWIRE_CONSOLE_PRIVACY_URL": procs["privacy-worker"].url,
            "TAPWIRE_CONSOLE_LOADER_URL": procs["loader"].url,
        },
        tmp_path / "console.log",
    )
    try:
        for proc in procs.values():
            proc.start()
        for proc in procs.values():
            proc.wait_ready()
        yield procs
    finally:
        for proc in procs.values():
            proc.kill()


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html[:2000]
    return found.group(1)


def signed_in(console: TapwireProcess) -> httpx.Client:
    """A browser session: the sign-in form with the account's passcode, as a person fills it in."""
    browser = httpx.Client(
        base_url=console.url, headers={"Origin": console.url, "Sec-Fetch-Site": "same-origin"}, timeout=60
    )
    form = browser.get("/console")
    assert form.status_code == 200 and "Sign in" in form.text
    answer = browser.post(
        "/console/sign-in",
        data={
            "mode": "passcode",
            "account_id": ACCOUNT,
            "passcode": PASSCODE,
            "csrf_token": csrf_of(form.text),
            "next": "/console",
        },
    )
    assert answer.status_code == 303, answer.text[:2000]
    return browser


def page(browser: httpx.Client, path: str) -> str:
    answer = browser.get(path)
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:2000])
    return answer.text


# Six service processes start before the test begins; on the shared two-core machine that alone can take
# minutes, which the default five-minute limit would count against the test.
@pytest.mark.timeout(600)
def test_the_console_works_through_the_other_services_over_http(services: dict[str, TapwireProcess]) -> None:
    records = [
        {"type": "profile", "identity": "ann", "ts": JAN_5, "profileData": {"Email": "ann@example.com", "Tier": "gold"}},
        {"type": "event", "identity": "ann", "ts": JAN_5, "evtName": "Viewed", "evtData": {"sku": "B-1"}},
        {"type": "event", "identity": "ann", "ts": JAN_5 + 60, "evtName": "Bought", "evtData": {"amount": 9.5}},
        {"type": "event", "identity": "bob", "ts": JAN_5 + 120, "evtName": "Viewed", "evtData": {"sku": "B-2"}},
    ]  # fmt: skip
    uploaded = httpx.post(
        f"{services['gateway'].url}/1/upload", headers=HEADERS, json={"d": records}, timeout=30
    )
    assert uploaded.status_code == 200 and uploaded.json()["processed"] == 4

    def loaded() -> bool:
        body = {"event_name": "Viewed", "from": 20260101, "to": 20260131}
        counted = httpx.post(f"{services['query'].url}/1/counts/events.json", headers=HEADERS, json=body)
        return bool(counted.json().get("count") == 2)

    wait_until(loaded, "the events to reach the warehouse")
    browser = signed_in(services["console"])

    # Overview: daily activity from the query service, ingestion health from the loader's metrics.
    overview = page(browser, "/console?to=20260131")
    assert re.search(r'data-testid="events-total">\s*3\s*<', overview), overview
    assert "loader lag" in overview

    # A profile: the record, timeline and merged keys from the query service, consent from messaging.
    profile = page(browser, "/console/profiles/i:ann?identity=ann")
    assert "ann@example.com" in profile and "gold" in profile
    assert "Bought" in profile and "Viewed" in profile
    assert "No opt-out or objection recorded" in profile

    # The builder's live count, compiled and counted by the query service.
    counted = browser.post(
        "/console/segments/count",
        data={
            "csrf_token": csrf_of(profile),
            "n-r-kind": "group",
            "n-r-match": "all",
            "n-r.0-kind": "profile",
            "n-r.0-prop": "Tier",
            "n-r.0-prop_op": "equals",
            "n-r.0-prop_value": "gold",
        },
    )
    assert counted.status_code == 200
    assert re.search(r'data-testid="audience-size">1<', counted.text), counted.text
    assert "Campaigns" in page(browser, "/console/campaigns")

    # An export from the profile page becomes a privacy request the privacy worker completes.
    requested = browser.post(
        "/console/profiles/i:ann/privacy",
        data={"csrf_token": csrf_of(profile), "type": "export", "identity": "ann"},
    )
    assert requested.status_code == 303, requested.text[:2000]
    location = requested.headers["location"]
    assert location.startswith("/console/privacy/")
    wait_until(lambda: ">completed<" in page(browser, location), "the export to complete")
    assert location.rsplit("/", 1)[1] in page(browser, "/console/privacy")

    # Signing out ends the session in the console's own store at once, and in the query service (which
    # keeps sessions it resolved for a few seconds) within seconds.
    cookie = browser.cookies["tw_session"]
    token = cookie.rsplit(".", 1)[0]
    out = browser.post("/console/sign-out", data={"csrf_token": csrf_of(page(browser, "/console/me"))})
    assert out.status_code == 303
    assert "Sign in" in httpx.get(f"{services['console'].url}/console", cookies={"tw_session": cookie}).text
    bearer = {"Authorization": f"Bearer {token}"}
    query_url = f"{services['query'].url}/query/v1/activity"
    wait_until(
        lambda: httpx.get(query_url, headers=bearer).status_code == 401,
        "the query service to refuse the ended session",
        timeout_s=15,
    )

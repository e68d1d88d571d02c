"""The console as people use it, in a real browser against `tapwire up` with a real SMTP sink.

Signs in, watches an upload arrive on the overview, builds a segment whose live count matches the API's,
sends an email campaign from the console to the sink and reads its report, works a privacy request to its
completion, checks that hostile values render as text and that forged or cross-site posts change nothing, and
that a marketer — invited by email — cannot open Settings. A screenshot of every page is saved on the way.
"""

from __future__ import annotations

import datetime as dt
import http.server
import itertools
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser

from tapwire_services import generate
from tests.console.browser import SCREENSHOTS_ENV, Tab, chromium, tab
from tests.integration.processes import TapwireProcess, free_port
from tests.messaging.servers import SmtpSink, smtp_sink

pytestmark = pytest.mark.integration

ACCOUNT = "CONSOLE-ACC"
PASSCODE = "console-passcode-0123456789"
WRITE_KEY = "console-write-key-0123456789"
HEADERS = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
DOOMED = "DOOMED-ACC"
DOOMED_PASSCODE = "doomed-passcode-0123456789"
NAV = ["Overview", "Events", "Profiles", "Segments", "Campaigns", "Privacy", "Settings"]
T = TypeVar("T")


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with smtp_sink() as running:
        yield running


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[TapwireProcess]:
    work = tmp_path_factory.mktemp("console-suite")
    proc = TapwireProcess(
        ["up"],
        env={
            "TAPWIRE_DATA_DIR": str(work / "data"),
            "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:{WRITE_KEY},{DOOMED}:{DOOMED_PASSCODE}:doomed-write-key-0123456789",
            "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
            "TAPWIRE_SMTP_URL": sink.url,
            "TAPWIRE_EMAIL_FROM": "news@shop.example",
            "TAPWIRE_PRIVACY_SWEEP_DELAY_S": "1",
            "TAPWIRE_EMBEDDED_LOG_RETENTION_HOURS": "0.002",  # 7 s: an erasure completes once its copies are gone
            "TAPWIRE_PRIVACY_SUPPRESSION_REFRESH_S": "0.5",
            "TAPWIRE_PRIVACY_POLL_S": "0.2",
            "TAPWIRE_MESSAGING_POLL_S": "0.1",
        },
        log_path=work / "tapwire.log",
    ).start()
    try:
        # chDB's start and the migrations take a while on a busy two-core machine.
        proc.wait_ready(timeout_s=240)
        seed(proc)
        yield proc
    finally:
        proc.stop()


def seed(proc: TapwireProcess) -> None:
    """A month of generated activity ending now, so every page has something to show."""
    shift = (
        int(time.time()) - generate.BASE_TS - 36 * generate.DAY_S
    )  # the last profile updates stay in the past

    def moved(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "ts": int(record["ts"]) + shift} if "ts" in record else record

    records = (moved(r) for r in itertools.chain(generate.profiles(300, 5), generate.events(300, 6000, 5)))
    with httpx.Client(base_url=proc.url, headers=HEADERS, timeout=60) as client:
        for batch in generate.batches(records, 500):
            response = client.post("/1/upload", json={"d": batch})
            assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get(SCREENSHOTS_ENV)
    return Path(configured) if configured else tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture
def admin(browser: Browser, suite: TapwireProcess, shots: Path) -> Iterator[Tab]:
    with tab(browser, suite.url, shots) as signed_in:
        signed_in.sign_in_with_passcode(ACCOUNT, PASSCODE)
        yield signed_in
        assert signed_in.errors == [], (
            f"the browser reported errors (CSP violations among them): {signed_in.errors}"
        )


def api(suite: TapwireProcess, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, suite.url + path, headers=HEADERS, json=body, timeout=60)


def upload(suite: TapwireProcess, records: list[dict[str, Any]]) -> None:
    response = api(suite, "POST", "/1/upload", {"d": records})
    assert response.status_code == 200 and response.json()["processed"] == len(records), response.text


def eventually(check: Callable[[], T | None], *, timeout_s: float = 60, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def number(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text) or "0")


def test_sign_in_and_every_page_has_the_navigation(
    browser: Browser, suite: TapwireProcess, shots: Path
) -> None:
    with tab(browser, suite.url, shots) as visitor:
        page = visitor.go("/console")
        visitor.shot("sign-in")
        assert page.get_by_role("button", name="Sign in").is_visible()
        page.get_by_label("Account ID").fill(ACCOUNT)
        page.get_by_label("Passcode").fill("not-the-passcode-000000")
        page.get_by_role("button", name="Sign in").click()
        assert "not valid" in page.get_by_role("alert").inner_text()
        visitor.errors.clear()  # the refused sign-in answered 401, as it should
        visitor.sign_in_with_passcode(ACCOUNT, PASSCODE)
        nav = page.get_by_role("navigation", name="Main")
        assert [link.inner_text() for link in nav.get_by_role("link").all()] == NAV
        for name in NAV:
            nav.get_by_role("link", name=name, exact=True).click()
            page.wait_for_load_state("networkidle")
            assert page.locator("h1").inner_text().startswith(name), name
            assert page.get_by_role("link", name=name, exact=True).get_attribute("aria-current") == "page"
        # The CSP allows no inline script, and every asset comes from tapwire itself.
        csp = httpx.get(suite.url + "/").headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        sources = page.eval_on_selector_all("script[src], link[href]", "els => els.map(e => e.src || e.href)")
        assert sources and all(src.startswith(suite.url) for src in sources), sources
        assert visitor.errors == []


def test_the_overview_shows_what_an_upload_just_sent(admin: Tab, suite: TapwireProcess) -> None:
    name = f"Console Check {uuid.uuid4().hex[:6]}"
    now = int(time.time())
    upload(
        suite,
        [
            {"type": "event", "identity": f"ov-{i}", "ts": now, "evtName": name, "evtData": {"n": i}}
            for i in range(7)
        ],
    )

    def shown() -> bool:
        page = admin.go("/")
        return (
            page.get_by_role("link", name=name).count() == 1
            and number(page.get_by_test_id("recent-events").inner_text()) >= 7
        )

    eventually(shown, what="the upload on the overview")
    row = admin.page.get_by_role("row").filter(has=admin.page.get_by_role("link", name=name))
    assert number(row.get_by_role("cell").nth(1).inner_text()) == 7
    admin.page.wait_for_selector(".uplot")  # the chart was drawn
    admin.shot("overview")
    page = admin.go(f"/console/events?name={name.replace(' ', '+')}")
    assert page.get_by_role("row").filter(has_text=name).count() == 7
    admin.shot("events")


def test_the_builders_live_count_equals_the_count_api(admin: Tab, suite: TapwireProcess) -> None:
    plan = f"plan-{uuid.uuid4().hex[:6]}"
    upload(
        suite,
        [
            {
                "type": "profile",
                "identity": f"seg-{i}",
                "profileData": {"Plan": plan if i % 3 else "other", "Email": f"seg-{i}@example.com"},
            }
            for i in range(12)
        ],
    )
    definition = {
        "conditions": [{"all": [{"profile": {"name": "Plan", "operator": "equals", "value": plan}}]}]
    }
    expected = eventually(
        lambda: api(suite, "POST", "/1/counts/profiles.json", definition).json().get("count"),
        what="the profiles to load",
    )
    assert expected == 8
    page = admin.go("/console/segments/new")
    page.get_by_role("button", name="+ Profile property").click()
    page.wait_for_load_state("networkidle")
    page.get_by_label("Property", exact=True).fill("Plan")
    page.get_by_label("Value (a, b: any of)").fill(plan)
    page.wait_for_function(
        "expected => document.querySelector('[data-testid=audience-size]')?.textContent.trim() === String(expected)",
        arg=expected,
        timeout=30_000,
    )
    admin.shot("segment-builder")
    page.get_by_label("Segment name").fill(f"Plan {plan}")
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_load_state("networkidle")
    assert "/console/segments/" in page.url
    page.wait_for_selector("[data-testid=audience-size]")
    assert number(page.get_by_test_id("audience-size").inner_text()) == expected
    admin.go("/console/segments?analyze=funnel&steps=App+Opened,Charged&hours=24")
    admin.shot("segments")


def test_an_email_campaign_reaches_the_smtp_sink_and_its_report_shows_the_sends(
    admin: Tab, suite: TapwireProcess, sink: SmtpSink
) -> None:
    tag = uuid.uuid4().hex[:6]
    upload(
        suite,
        [
            {
                "type": "profile",
                "identity": f"mail-{tag}-{i}",
                "profileData": {"Email": f"mail-{tag}-{i}@example.com", "Name": f"Reader {i}", "Tag": tag},
            }
            for i in range(5)
        ],
    )
    segment = api(
        suite,
        "POST",
        "/segments",
        {
            "name": f"Readers {tag}",
            "definition": {"conditions": [{"profile": {"name": "Tag", "value": tag}}]},
        },
    ).json()["id"]
    eventually(
        lambda: api(suite, "POST", f"/segments/{segment}/count").json().get("count") == 5,
        what="the readers to load",
    )
    page = admin.go(f"/console/campaigns/new?segment={segment}")
    page.get_by_label("Campaign name").fill(f"Newsletter {tag}")
    page.get_by_label("Email", exact=True).check()
    page.get_by_label("Subject").first.fill("Hello {{ Profile.Name }}")
    page.get_by_label("Message").first.fill("News for {{ Profile.Name | default: 'you' }}.")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector(".preview-card")
    assert re.search(r"Hello Reader \d", page.locator(".preview-card").inner_text())
    admin.shot("campaign-new")
    page.get_by_role("button", name="Create campaign").click()
    page.wait_for_load_state("networkidle")
    assert re.search(r"/console/campaigns/\d+$", page.url), page.url

    expected = {f"mail-{tag}-{i}@example.com" for i in range(5)}
    eventually(lambda: expected <= set(sink.by_recipient()), what="the campaign's mail in the SMTP sink")
    subjects = {str(m["Subject"]) for to, ms in sink.by_recipient().items() if to in expected for m in ms}
    assert subjects == {f"Hello Reader {i}" for i in range(5)}

    def reported() -> bool:
        admin.page.reload()
        admin.page.wait_for_load_state("networkidle")
        return number(admin.page.get_by_test_id("campaign-sent").inner_text()) == 5

    eventually(reported, what="the report to show five sends")
    assert number(admin.page.get_by_test_id("A-sent").inner_text()) == 5
    admin.shot("campaign-report")
    admin.go("/console/campaigns")
    assert admin.page.get_by_role("link", name=f"Newsletter {tag}").is_visible()
    admin.shot("campaigns")


def test_a_privacy_request_shows_its_deadline_and_completes(admin: Tab, suite: TapwireProcess) -> None:
    identity = f"erase-{uuid.uuid4().hex[:6]}"
    upload(suite, [{"type": "event", "identity": identity, "evtName": "App Opened", "evtData": {}}])
    page = admin.go("/console/privacy")
    page.get_by_label("Type").select_option("erasure")
    page.get_by_label("Identity").fill(identity)
    page.get_by_role("button", name="Submit").click()
    page.wait_for_load_state("networkidle")
    request_id = page.url.rsplit("/", 1)[1]
    record = api(suite, "GET", f"/privacy/v1/requests/{request_id}").json()
    due = dt.datetime.fromisoformat(record["due_at"].replace("Z", "+00:00"))
    received = dt.datetime.fromisoformat(record["received_at"].replace("Z", "+00:00"))
    assert 28 <= (due - received).days <= 31  # GDPR: one month
    assert page.get_by_test_id("due").inner_text() == due.strftime("%Y-%m-%d")
    days_left = (due.date() - dt.datetime.now(dt.UTC).date()).days
    assert f"{days_left} days left" in page.locator(".kpi").nth(1).inner_text()

    def completed() -> bool:
        admin.page.reload()
        return admin.page.get_by_test_id("completed").inner_text() != "not yet"

    eventually(completed, timeout_s=120, what="the erasure to complete")
    assert admin.page.get_by_test_id("verification-result").inner_text() == "verified"
    admin.shot("privacy-request")
    queue = admin.go("/console/privacy")
    assert queue.get_by_test_id(f"due-{request_id}").inner_text().startswith(due.strftime("%Y-%m-%d"))
    admin.shot("privacy")


HOSTILE = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def test_hostile_values_render_as_text(admin: Tab, suite: TapwireProcess) -> None:
    identity = f"xss-{uuid.uuid4().hex[:6]}"
    upload(
        suite,
        [
            {"type": "profile", "identity": identity, "profileData": {"Name": HOSTILE, HOSTILE: "key"}},
            {"type": "event", "identity": identity, "evtName": HOSTILE, "evtData": {"note": HOSTILE}},
        ],
    )
    eventually(
        lambda: api(suite, "GET", f"/1/profile.json?identity={identity}").status_code == 200,
        what="the profile",
    )
    page = admin.go(f"/console/profiles?q={identity}")
    page.get_by_role("link", name=identity).click()
    page.wait_for_load_state("networkidle")

    def timeline_shows_it() -> bool:
        admin.page.reload()
        return HOSTILE in admin.page.locator("main").inner_text()

    eventually(timeline_shows_it, what="the timeline")
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img[src=x]").count() == 0 and page.locator("main script").count() == 0
    # The privacy role's actions on a profile start a request for that person.
    page.get_by_role("button", name="Export this person's data").click()
    page.wait_for_load_state("networkidle")
    assert (
        re.search(r"/console/privacy/[0-9a-f]+$", page.url)
        and page.locator("h1").inner_text() == "Privacy request"
    )
    events = admin.go("/console/events")
    assert HOSTILE in events.locator("main").inner_text() and events.evaluate("window.__xss") is None


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    """A page on another port (same site, another origin) that posts to the console as soon as it loads."""

    target = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}/console/settings/credentials">'
            '<input name="kind" value="passcode"><input name="revoke_others" value="on"></form>'
            '<script>document.getElementById("f").submit()</script>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_generated_person_is_found_by_email_and_shown_with_properties_totals_and_timeline(
    admin: Tab, suite: TapwireProcess
) -> None:
    """One of the seeded (``tapwire generate``) people, a heavy one: the pages as a marketer meets them."""
    person = generate.identity_of(3)
    page = admin.go(f"/console/profiles?q={person}@example.com")
    link = page.get_by_role("link", name=person)
    assert link.count() == 1
    admin.shot("profiles")
    link.click()
    page.wait_for_load_state("networkidle")
    main = page.locator("main").inner_text()
    record = api(suite, "GET", f"/1/profile.json?identity={person}").json()["record"]
    assert record["profileData"]["Name"] == "User 3" and "User 3" in main
    timeline = page.locator("table.stream tbody tr")
    totals = sum(stats["count"] for stats in record["events"].values())
    # A page of the timeline: the newest 50 of the person's events, with the link to older ones.
    assert totals > 50 and timeline.count() == 50
    assert page.get_by_role("link", name="Older events").count() == 1
    for name in record["events"]:
        assert name in main
    admin.shot("profile")


def test_forged_and_cross_site_posts_change_nothing(admin: Tab, suite: TapwireProcess) -> None:
    before = api(suite, "GET", "/account/v1/credentials").json()["credentials"]
    # A post with the session cookie but without the form's token.
    forged = admin.page.request.post(
        suite.url + "/console/settings/credentials", form={"kind": "passcode", "revoke_others": "on"}
    )
    assert forged.status == 403
    # A token from the page, but sent from another origin.
    token = admin.go("/console/settings").locator("input[name=csrf_token]").first.get_attribute("value")
    cross = admin.page.request.post(
        suite.url + "/console/settings/credentials",
        form={"kind": "passcode", "revoke_others": "on", "csrf_token": token or ""},
        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status == 403
    # A page of the same site on another port (the browser sends the session cookie along) that submits a
    # form as soon as it loads.
    _AttackerPage.target = suite.url
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _AttackerPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        attack = admin.page.context.new_page()
        attack.goto(f"http://127.0.0.1:{port}/")
        attack.wait_for_load_state("networkidle")
        attack.close()
    finally:
        server.shutdown()
        server.server_close()
    assert api(suite, "GET", "/account/v1/credentials").json()["credentials"] == before
    # Nothing changed: the passcode still works, the admin is still signed in.
    assert admin.go("/console/settings").locator("h1").inner_text() == "Settings"


def test_a_new_write_key_is_shown_once_works_and_is_never_logged(admin: Tab, suite: TapwireProcess) -> None:
    page = admin.go("/console/settings")
    form = page.locator("form[action='/console/settings/credentials']")
    form.get_by_label("New credential").select_option("write_key")
    form.get_by_role("button", name="Issue").click()
    page.wait_for_load_state("networkidle")
    secret = page.get_by_test_id("new-secret").inner_text().strip()
    assert len(secret) >= 16
    # It is live at once (Segment-style ingestion authenticates with it alone)...
    tracked = httpx.post(
        suite.url + "/v1/track",
        auth=(secret, ""),
        json={"userId": "key-check", "event": "Key Checked", "messageId": uuid.uuid4().hex},
        timeout=60,
    )
    assert tracked.status_code == 200, tracked.text
    # ... and shown that once: not on the settings page again, nor in the credentials listing.
    assert secret not in admin.go("/console/settings").content()
    assert secret not in api(suite, "GET", "/account/v1/credentials").text
    # The API's rotation answers with its secret, once, as well.
    issued = api(suite, "POST", "/account/v1/credentials", {"kind": "write_key"})
    assert issued.status_code == 201, issued.text
    rotated = issued.json()["credential"]["secret"]
    assert rotated != secret and rotated not in api(suite, "GET", "/account/v1/credentials").text
    # Neither secret reached the process's log, which did record the requests (the audit trail names them).
    logs = suite.logs()
    assert "Accounts from TAPWIRE_ACCOUNTS" in logs
    assert secret not in logs and rotated not in logs
    audit = api(suite, "GET", "/account/v1/audit").text
    assert "credentials.issue" in audit and secret not in audit and rotated not in audit


def test_a_marketer_invited_by_email_cannot_open_settings(
    admin: Tab, browser: Browser, suite: TapwireProcess, sink: SmtpSink
) -> None:
    email = f"mia-{uuid.uuid4().hex[:6]}@example.com"
    page = admin.go("/console/settings")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Name", exact=True).fill("Mia")
    page.get_by_label("Role", exact=True).select_option("marketer")
    page.get_by_role("button", name="Invite").click()
    page.wait_for_load_state("networkidle")
    assert f"Invitation emailed to {email}" in page.get_by_role("status").inner_text()
    admin.shot("settings")
    invitation = eventually(lambda: sink.by_recipient().get(email), what="the invitation email")[0]
    link = re.search(r"http://\S+/console/invitation/\S+", invitation.get_content())
    assert link is not None
    password = "a marketer's long password"
    with tab(browser, suite.url, admin.shots) as marketer:
        accept = marketer.go(link.group(0).replace(suite.url, ""))
        accept.get_by_label("Password", exact=True).fill(password)
        accept.get_by_label("Password again").fill(password)
        accept.get_by_role("button", name="Set password").click()
        accept.wait_for_load_state("networkidle")
        marketer.sign_in_with_password(ACCOUNT, email, password)
        assert marketer.page.locator(".role-badge").inner_text().lower() == "marketer"
        marketer.go("/console/me")
        marketer.shot("my-profile")
        response = marketer.page.goto(suite.url + "/console/settings")
        assert response is not None and response.status == 403
        assert "Not available to your role" in marketer.page.locator("h1").inner_text()
        # The API refuses it too, whatever the page shows.
        cookie = next(c for c in marketer.page.context.cookies() if c["name"] == "tw_session")
        token = cookie["value"].rsplit(".", 1)[0]
        refused = httpx.get(suite.url + "/account/v1/settings", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403
        campaigns = marketer.go("/console/campaigns")
        assert campaigns.get_by_role("link", name="New campaign").is_visible()


HOSTILE_GETS = [
    "/console?to=abc",
    "/console?to=99999999",
    "/console/events?name=%00&identity=%27%22%3C",
    "/console/profiles?q=%FF%FE",
    "/console/profiles/%00?identity=%22",
    "/console/profiles/i:nobody?before_ms=-1",
    "/console/profiles/i:nobody?before_ms=abc",
    "/console/segments?analyze=trends&event=X&trend=hourly&from=2026-13-45&to=x",
    "/console/segments?analyze=funnel&steps=,,,&hours=x",
    "/console/segments?analyze=funnel&steps=A,B&hours=-5",
    "/console/segments?analyze=retention&first_event=A&periods=-5",
    "/console/segments?analyze=retention&first_event=A&periods=99999",
    "/console/segments/does-not-exist",
    "/console/campaigns/999999",
    "/console/campaigns/not-a-number",
    "/console/privacy/nonexistent",
    "/console/privacy?status=bogus",
    "/console/settings?before=abc",
    "/console/invitation/forged-token",
]


def test_nothing_a_person_can_type_makes_a_page_fail(admin: Tab, suite: TapwireProcess) -> None:
    """Odd query strings, paths and form values answer with a page (4xx at worst), never a 500."""
    cookies = {c["name"]: c["value"] for c in admin.page.context.cookies()}
    token = admin.go("/console/settings").locator("input[name=csrf_token]").first.get_attribute("value") or ""
    with httpx.Client(
        base_url=suite.url, cookies=cookies, headers={"Origin": suite.url}, timeout=60
    ) as client:
        for path in HOSTILE_GETS:
            assert client.get(path).status_code < 500, path
        forms: list[tuple[str, dict[str, str]]] = [
            (
                "/console/settings/account",
                {
                    "upload_concurrency": "lots",
                    "cap_email_limit": "x",
                    "cap_email_hours": "y",
                    "quiet_start": "25:99",
                    "privacy_jurisdiction": "mars",
                    "cors_origins": "\x00",
                },
            ),
            ("/console/settings/credentials", {"kind": "password"}),
            ("/console/settings/credentials/abc/revoke", {}),
            ("/console/settings/users", {"email": "not-an-email", "name": "", "role": "overlord"}),
            ("/console/settings/users/999999/role", {"role": "overlord"}),
            (
                "/console/campaigns",
                {
                    "channel": "pigeon",
                    "name": "",
                    "control_group_percent": "abc",
                    "when": "tomorrow",
                    "cap_limit": "x",
                    "cap_hours": "y",
                    "goal_event": "E",
                    "goal_hours": "z",
                },
            ),
            ("/console/campaigns", {"channel": "email", "name": "X", "a_subject": "{% if %}", "a_body": "b"}),
            (
                "/console/campaigns/preview",
                {"channel": "sms", "a_body": "{{ Profile.x | nosuchfilter }}", "audience": "nope"},
            ),
            ("/console/segments/builder", {"op": "add:r.9.9:did", "n-r-kind": "group"}),
            ("/console/segments/count", {"json_mode": "on", "json": "{not json"}),
            (
                "/console/segments/count",
                {"n-r-kind": "group", "n-r.0-kind": "did", "n-r.0-count_op": "equals", "n-r.0-count": "many"},
            ),
            ("/console/segments/save", {"name": "", "json_mode": "on", "json": "[]"}),
            ("/console/privacy/requests", {"type": "erasure"}),
            ("/console/privacy/nonexistent/extend", {"months": "x", "reason": ""}),
            (
                "/console/me/password",
                {"current_password": "x", "new_password": "y", "new_password_again": "y"},
            ),
        ]
        for path, form in forms:
            answer = client.post(path, data={**form, "csrf_token": token})
            assert answer.status_code < 500, (path, answer.status_code, answer.text[:300])


def test_signing_in_and_moving_around_by_keyboard_alone(
    browser: Browser, suite: TapwireProcess, shots: Path
) -> None:
    with tab(browser, suite.url, shots) as visitor:
        page = visitor.go("/console")
        # The first field has the focus; Tab moves on, Enter submits.
        page.keyboard.type(ACCOUNT)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSCODE)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("h1").inner_text() == "Overview"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")  # past the brand link, onto the first navigation link
        assert page.evaluate("document.activeElement.textContent") == "Overview"
        for _ in NAV[1:3]:
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Profiles"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("h1").inner_text() == "Profiles"
        for _ in range(20):  # Tab through the page to the search field
            if page.evaluate("document.activeElement.id") == "q":
                break
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "q"
        page.keyboard.type("user-0000001")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.get_by_role("link", name="user-0000001").count() == 1
        assert visitor.errors == []


def test_an_admin_deletes_the_account_and_follows_it_by_its_link(
    browser: Browser, suite: TapwireProcess, shots: Path
) -> None:
    doomed = {"X-CleverTap-Account-Id": DOOMED, "X-CleverTap-Passcode": DOOMED_PASSCODE}
    uploaded = httpx.post(
        suite.url + "/1/upload",
        headers=doomed,
        json={"d": [{"type": "event", "identity": "doomed-user", "evtName": "App Opened", "evtData": {}}]},
        timeout=60,
    )
    assert uploaded.status_code == 200, uploaded.text
    with tab(browser, suite.url, shots) as admin:
        admin.sign_in_with_passcode(DOOMED, DOOMED_PASSCODE)
        page = admin.go("/console/settings")
        form = page.locator("form[action='/console/settings/delete-account']")
        form.get_by_label("Account ID (type it to confirm)").fill(ACCOUNT)
        form.get_by_role("button", name="Delete account").click()
        page.wait_for_load_state("networkidle")
        assert "type the account id" in page.locator(".field-error").inner_text()
        admin.errors.clear()  # the refused confirmation answered 422, as it should
        form = page.locator("form[action='/console/settings/delete-account']")
        form.get_by_label("Account ID (type it to confirm)").fill(DOOMED)
        form.get_by_role("button", name="Delete account").click()
        page.wait_for_load_state("networkidle")
        assert page.get_by_role("heading", name="Account deletion started").is_visible()
        status_url = page.get_by_test_id("deletion-status").inner_text().strip()
        admin.shot("account-deleted")
        assert admin.errors == []

    def finished() -> dict[str, Any] | None:
        shown: dict[str, Any] = httpx.get(status_url, timeout=60).json()
        return shown if shown["status"] == "completed" else None

    job = eventually(finished, timeout_s=180, what="the account's deletion to complete")
    archive = httpx.get(job["archive"]["url"], timeout=60) if job["archive"].get("url") else None
    assert archive is not None and archive.status_code == 200 and archive.content[:2] == b"PK"
    assert job["completion_record"]["removed"]["warehouse.events"] >= 1
    assert httpx.get(suite.url + "/privacy/v1/requests", headers=doomed, timeout=60).status_code == 401
    # The other account works as before.
    assert api(suite, "GET", "/privacy/v1/requests").status_code == 200

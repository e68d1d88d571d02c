"""The console in Debian's chromium, driven by Playwright (never a downloaded browser), against `tapwire up`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where the run leaves a screenshot of every page; `TAPWIRE_CONSOLE_SCREENSHOTS=docs/console` refreshes the
# committed ones.
SCREENSHOTS_ENV = "TAPWIRE_CONSOLE_SCREENSHOTS"


@contextmanager
def chromium() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it (make clients)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """One browser context (its own cookies) with a page, collecting console errors (CSP violations among
    them) and saving screenshots."""

    page: Page
    base: str
    shots: Path
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def go(self, path: str) -> Page:
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def sign_in_with_passcode(self, account: str, passcode: str) -> None:
        page = self.go("/console")
        page.get_by_label("Account ID").fill(account)
        page.get_by_label("Passcode").fill(passcode)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state("networkidle")

    def sign_in_with_password(self, account: str, email: str, password: str) -> None:
        page = self.go("/console?with=email")
        page.get_by_label("Account ID").fill(account)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state("networkidle")


@contextmanager
def tab(browser: Browser, base: str, shots: Path) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        yield Tab(context.new_page(), base, shots)
    finally:
        context.close()

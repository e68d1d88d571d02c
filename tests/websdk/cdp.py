"""Debian's headless Chromium driven over the DevTools protocol: pages are loaded and polled in real time.

``--dump-dom`` with a virtual time budget ends when the page's own timers have used the budget, however long the
browser's other work (a service worker starting, a script answer from a slow server) takes in real time; on a
loaded machine that cut pages short. Here a page is polled until it reports that it is done, or a real-time
deadline passes. One browser process serves every visit, so the profile (cookies, local storage) carries over
from one page load to the next as it does in a visitor's browser.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from websockets.sync.client import connect

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class Chromium:
    def __init__(self, profile: Path, extra_flags: list[str]) -> None:
        chromium = shutil.which("chromium")
        assert chromium is not None, "Debian's chromium is missing: `make test` installs it"
        profile.mkdir(parents=True, exist_ok=True)
        self._profile = profile
        self._process = subprocess.Popen(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                *extra_flags,
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=os.environ | {"HOME": str(profile)},
        )
        self._base = f"http://127.0.0.1:{self._devtools_port()}"
        self._ids = itertools.count(1)

    def _devtools_port(self, timeout_s: float = 60) -> int:
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"chromium exited with {self._process.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                return int(port_file.read_text().split()[0])
            time.sleep(0.1)
        raise AssertionError("chromium did not open its DevTools port")

    def text_when(self, url: str, element_id: str, prefix: str, *, timeout_s: float = 90) -> str:
        """Open ``url`` in a new tab and return the text of ``element_id`` once it starts with ``prefix``;
        fail with the last text seen after ``timeout_s`` of real time."""
        target = httpx.put(f"{self._base}/json/new?{quote(url, safe='')}", timeout=30).json()
        last = ""
        try:
            with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as socket:
                expression = f"(document.getElementById({json.dumps(element_id)}) || {{}}).textContent || ''"
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    last = self._evaluate(socket, expression)
                    if last.startswith(prefix):
                        return last
                    time.sleep(0.2)
        finally:
            httpx.get(f"{self._base}/json/close/{target['id']}", timeout=30)
        raise AssertionError(f"{url}: #{element_id} never started with {prefix!r}; last: {last}")

    def _evaluate(self, socket: Any, expression: str) -> str:
        message_id = next(self._ids)
        socket.send(
            json.dumps(
                {
                    "id": message_id,
                    "method": "Runtime.evaluate",
                    "params": {"expression": expression, "returnByValue": True},
                }
            )
        )
        while True:
            reply = json.loads(socket.recv(timeout=30))
            if reply.get("id") == message_id:
                value = reply.get("result", {}).get("result", {}).get("value")
                return value if isinstance(value, str) else ""

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=15)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

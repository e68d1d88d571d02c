"""Driving a running ``tapwire`` process from a test: one account's calls to its CleverTap API, and waiting for
what the suite does in the background (the loader, the sender, the privacy worker)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

# What an estimate needs besides its audience, per channel: content that passes the channel's checks.
_ESTIMATE_CONTENT: Mapping[str, dict[str, str]] = {
    "email": {"subject": "s", "body": "b"},
    "push": {"title": "T", "body": "B"},
}


def wait_for(
    predicate: Callable[[], bool], what: str, *, timeout_s: float = 120, poll_s: float = 0.1
) -> None:
    """Poll ``predicate`` every ``poll_s`` until it holds; fails naming ``what`` after ``timeout_s``. The
    timeout only catches what never happens: it is no speed budget."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass(frozen=True)
class AccountApi:
    """One account's calls to the suite at ``url``, authenticated with its passcode. A suite restarted on the
    same port (after a kill) is reached by the same object."""

    url: str
    account: str
    passcode: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CleverTap-Account-Id": self.account, "X-CleverTap-Passcode": self.passcode}

    def post(self, path: str, body: Any, *, timeout_s: float = 30) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", headers=self.headers, json=body, timeout=timeout_s)

    def get(
        self, path: str, params: Mapping[str, str] | None = None, *, timeout_s: float = 10
    ) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=timeout_s)

    def event_count(self, name: str, *, days: tuple[object, object]) -> int:
        """How many ``name`` events the suite counts from the first day to the second (``YYYYMMDD``)."""
        body = {"event_name": name, "from": days[0], "to": days[1]}
        response = self.post("/1/counts/events.json", body)
        assert response.status_code == 200, response.text
        count: int = response.json()["count"]
        return count

    def profile_status(self, **key: str) -> int:
        """The status of ``/1/profile.json`` for one key (``identity=…``, ``email=…``, ``objectId=…``)."""
        return self.get("/1/profile.json", key).status_code

    def reach(self, where: Mapping[str, Any], *, channel: Literal["email", "push"] = "email") -> int | None:
        """How many users a campaign on ``channel`` to ``where`` would reach now; None while the suite cannot
        say (it answers an error while starting)."""
        estimate = {
            "name": "estimate",
            "target_mode": channel,
            "where": dict(where),
            "content": _ESTIMATE_CONTENT[channel],
        }
        reach: int | None = (
            self.post("/1/targets/estimate.json", estimate).json().get("estimate", {}).get("reach")
        )
        return reach

    def campaign_result(self, campaign_id: object) -> dict[str, Any] | None:
        """A campaign's result once it is complete; None before."""
        response = self.post("/1/targets/result.json", {"id": campaign_id})
        if response.status_code != 200:
            return None
        result: dict[str, Any] = response.json()["result"]
        return result

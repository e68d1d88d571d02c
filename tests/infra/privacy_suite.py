"""``tapwire up`` with a privacy worker that finishes an erasure in seconds, for end-to-end erasure tests: the
loader and the worker poll every 0.2 s, the second sweep comes after 1 s, and the embedded log keeps records about
7 s, so an erasure completes once its copies on the log are gone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.infra.suite_api import AccountApi, wait_for
from tests.integration.processes import TapwireProcess

FAST_PRIVACY = {
    "TAPWIRE_LOADER_BATCH_SECONDS": "0.2",
    "TAPWIRE_PRIVACY_POLL_S": "0.2",
    "TAPWIRE_PRIVACY_SWEEP_DELAY_S": "1",
    "TAPWIRE_EMBEDDED_LOG_RETENTION_HOURS": "0.002",  # 7 s: an erasure completes once its copies are gone
    "TAPWIRE_PRIVACY_SUPPRESSION_REFRESH_S": "0.2",
}


@contextmanager
def fast_privacy_suite(tmp_path: Path, *, accounts: str, ready_timeout_s: float) -> Iterator[TapwireProcess]:
    """The suite for ``accounts`` (``TAPWIRE_ACCOUNTS``), ready; killed afterwards."""
    proc = TapwireProcess(
        ["up"],
        env={"TAPWIRE_DATA_DIR": str(tmp_path / "data"), "TAPWIRE_ACCOUNTS": accounts, **FAST_PRIVACY},
        log_path=tmp_path / "tapwire.log",
    ).start()
    try:
        proc.wait_ready(timeout_s=ready_timeout_s)
        yield proc
    finally:
        proc.kill()


def erase_and_wait(api: AccountApi, identity: str, *, timeout_s: float) -> dict[str, Any]:
    """Erase the person with ``identity`` through CleverTap's delete call; the request's detail once completed."""
    response = api.post("/1/delete/profiles.json", {"identity": identity}, timeout_s=10)
    assert response.status_code == 200, response.text
    path = f"/privacy/v1/requests/{response.json()['requests'][0]['id']}"
    wait_for(
        lambda: bool(api.get(path).json()["status"] == "completed"),
        "the erasure to complete",
        timeout_s=timeout_s,
        poll_s=0.2,
    )
    detail: dict[str, Any] = api.get(path).json()
    return detail

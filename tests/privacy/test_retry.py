"""A request whose store step failed for good is re-queued by the operator and resumes where it stopped."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tapwire_core import metrics
from tapwire_privacy.worker import progress as worker_progress
from tests.privacy.conftest import HEADERS, Api
from tests.privacy.seed import event, profile, rows_naming, write

pytestmark = pytest.mark.integration

OTHER = {"X-CleverTap-Account-Id": "ACC-2", "X-CleverTap-Passcode": "passcode-2-0123456789"}


def _failed_gauge() -> float | None:
    return metrics.REGISTRY.get_sample_value("tapwire_privacy_requests_failed")


def _stopped_after_errors() -> float:
    value = metrics.REGISTRY.get_sample_value(
        "tapwire_privacy_requests_stopped_total", {"type": "erasure", "cause": "errors"}
    )
    return value or 0.0


async def _get(api: Api, request_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _retry(api: Api, request_id: str, headers: dict[str, str] = HEADERS) -> httpx.Response:
    return await api.client.post(f"/privacy/v1/requests/{request_id}/retry", headers=headers)


async def test_a_failed_erasure_is_requeued_once_and_finishes(api: Api) -> None:
    rig = api.rig
    rig.settings.privacy_max_attempts = 3
    await write(
        rig.warehouse,
        [
            event("ACC-1", identity="rhea"),
            profile("ACC-1", {"Name": "Rhea", "Visits": {"$incr": 1}}, identity="rhea"),
            event("ACC-1", identity="other"),
        ],
    )
    # A store that stays down: the profile operators' table is gone while the erasure runs.
    await rig.warehouse.command("RENAME TABLE profile_ops TO profile_ops_away")
    stopped_before = _stopped_after_errors()
    created = await api.client.post(
        "/privacy/v1/requests", headers=HEADERS, json={"type": "erasure", "subject": {"identity": "rhea"}}
    )
    request_id = created.json()["id"]
    for _ in range(10):
        await rig.worker.tick()
        rig.clock.advance(seconds=worker_progress.MAX_BACKOFF_S + 1)
        if (await rig.repository.requests.get(request_id)).status == "failed":
            break
    failed = await _get(api, request_id)
    assert failed["status"] == "failed"
    assert failed["attempts"] == 3
    assert failed["failure"] == {
        "cause": "errors",
        "attempts": 3,
        "step": "warehouse.profile_ops",
        "error": failed["progress"]["warehouse.profile_ops"]["error"],
    }
    assert [n["kind"] for n in failed["notices"]] == ["failed"]
    assert _stopped_after_errors() == stopped_before + 1
    assert failed["progress"]["warehouse.profile_ops"]["state"] == "pending"
    assert failed["progress"]["warehouse.events"]["state"] == "erased"  # the stores that worked stay done
    assert [a["store"] for a in failed["audit"] if a["action"] == "failed"] == ["warehouse.profile_ops"] * 3
    await rig.worker.refresh_deadline_metrics()
    assert _failed_gauge() == 1

    # Another account cannot see it; a request that is not failed cannot be re-queued.
    assert (await _retry(api, request_id, OTHER)).status_code == 404
    assert (await _retry(api, "0" * 32)).status_code == 404

    await rig.warehouse.command("RENAME TABLE profile_ops_away TO profile_ops")
    first = await _retry(api, request_id)
    assert first.status_code == 200, first.text
    assert first.json()["requeued"] is True and first.json()["status"] == "in_progress"
    again = await _retry(api, request_id)
    assert again.status_code == 200 and again.json()["requeued"] is False
    assert first.json()["failure"] is None and first.json()["attempts"] == 0
    requeued = [a for a in (await _get(api, request_id))["audit"] if a["action"] == "requeued"]
    assert len(requeued) == 1
    assert requeued[0]["detail"] == {"previous_attempts": 3, "failed_at": ["warehouse.profile_ops"]}

    await rig.run_until_settled()
    done = await _get(api, request_id)
    assert done["status"] == "completed" and done["verification"]["result"] == "verified"
    assert await rows_naming(rig.warehouse, "ACC-1", ["rhea"]) == dict.fromkeys(
        ["events", "profiles", "profile_props", "profile_ops", "user_aliases"], 0
    )
    assert (await rows_naming(rig.warehouse, "ACC-1", ["other"]))["events"] == 1
    # Every store erased once per sweep: the retry resumed, it did not start over.
    erased = [a["store"] for a in done["audit"] if a["action"] == "erased"]
    assert erased.count("warehouse.events") == 2 and erased.count("warehouse.profile_ops") == 2
    await rig.worker.refresh_deadline_metrics()
    assert _failed_gauge() == 0

    conflict = await _retry(api, request_id)
    assert conflict.status_code == 409 and "completed" in conflict.json()["error"]
    assert "rhea" not in str(done)


async def test_only_failed_requests_can_be_requeued(api: Api) -> None:
    referred = await api.rig.repository.requests.create(
        account_id="ACC-1",
        type="export",
        scope="subject",
        channel="direct",
        jurisdiction="gdpr",
        keys=["i:zoe"],
        status="referred",
    )
    refused = await _retry(api, referred.id)
    assert refused.status_code == 409 and "referred" in refused.json()["error"]
    pending = await api.client.post(
        "/privacy/v1/requests", headers=HEADERS, json={"type": "export", "subject": {"identity": "zoe"}}
    )
    unchanged = await _retry(api, pending.json()["id"])
    assert unchanged.status_code == 200 and unchanged.json()["requeued"] is False
    assert unchanged.json()["status"] == "pending"
    unauthenticated = await api.client.post(f"/privacy/v1/requests/{referred.id}/retry")
    assert unauthenticated.status_code == 401

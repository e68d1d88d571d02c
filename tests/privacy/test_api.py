"""The privacy HTTP API over real stores: intake, confirmation, deadlines, extension, listing, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tapwire_core import metrics
from tests.privacy.conftest import HEADERS, Api
from tests.privacy.seed import event, rows_naming, write

pytestmark = pytest.mark.integration


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "fail" and body["code"] == status and body["error"] == body["message"]
    return body


async def create(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.post("/privacy/v1/requests", headers=HEADERS, json=body)
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_request_is_recorded_with_its_gdpr_deadline(api: Api) -> None:
    body = await create(api, {"type": "erasure", "subject": {"email": "ann@example.com"}})
    assert body["status"] == "pending"
    assert body["received_at"] == "2026-01-10T09:00:00Z"
    assert body["due_at"] == "2026-02-10T23:59:59.999999Z"
    assert body["extended_until"] is None and body["completed_at"] is None
    fetched = await api.client.get(f"/privacy/v1/requests/{body['id']}", headers=HEADERS)
    assert fetched.status_code == 200
    assert fetched.json()["audit"][0]["action"] == "received"
    assert "ann@example.com" not in fetched.text


async def test_ccpa_accounts_get_ccpa_deadlines(api: Api) -> None:
    await api.rig.control.upsert_account(
        "ACC-1",
        passcode="passcode-1-0123456789",
        write_key="writekey-1-0123456789",
        region="eu1",
        settings={"privacy_jurisdiction": "ccpa"},
    )
    body = await create(api, {"type": "export", "subject": {"identity": "ann"}})
    assert body["jurisdiction"] == "ccpa"
    assert body["acknowledge_by"] == "2026-01-23T23:59:59.999999Z"
    assert body["due_at"] == "2026-02-24T23:59:59.999999Z"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"type": "erasure"}, 422),
        ({"type": "erasure", "subject": {}}, 422),
        ({"type": "forget", "subject": {"identity": "x"}}, 422),
        ({"type": "rectify", "subject": {"identity": "x"}}, 422),
        ({"type": "erasure", "subject": {"identity": "x"}, "fields": {"Name": "y"}}, 422),
        ({"type": "objection", "scope": "tenant"}, 422),
        ({"type": "erasure", "scope": "tenant", "subject": {"identity": "x"}}, 422),
        ({"type": "erasure", "subject": {"identity": "x", "shoeSize": 9}}, 422),
    ],
)
async def test_invalid_requests_are_refused_clearly(api: Api, body: dict[str, Any], status: int) -> None:
    assert_error(await api.client.post("/privacy/v1/requests", headers=HEADERS, json=body), status)


async def test_malformed_and_unauthenticated(api: Api) -> None:
    assert_error(
        await api.client.post(
            "/privacy/v1/requests", headers={**HEADERS, "Content-Type": "application/json"}, content=b"{nope"
        ),
        400,
    )
    wrong = {**HEADERS, "X-CleverTap-Passcode": "wrong"}
    assert_error(await api.client.post("/privacy/v1/requests", headers=wrong, json={}), 401)
    assert_error(await api.client.get("/privacy/v1/requests/unknown", headers=HEADERS), 404)


async def test_another_accounts_request_is_not_visible(api: Api) -> None:
    view = await api.rig.repository.requests.create(
        account_id="ACC-2", type="erasure", scope="subject", channel="api", jurisdiction="gdpr", keys=["i:x"]
    )
    assert_error(await api.client.get(f"/privacy/v1/requests/{view.id}", headers=HEADERS), 404)
    assert_error(
        await api.client.post(
            f"/privacy/v1/requests/{view.id}/extend", headers=HEADERS, json={"months": 1, "reason": "complex"}
        ),
        404,
    )


async def test_clevertap_delete_profiles_creates_one_erasure_per_profile(api: Api) -> None:
    response = await api.client.post(
        "/1/delete/profiles.json", headers=HEADERS, json={"identity": ["a", "b", "a"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["processed"] == 2
    by_guid = await api.client.post("/1/delete/profiles.json", headers=HEADERS, json={"guid": "g-1"})
    assert by_guid.json()["processed"] == 1
    listed = await api.client.get("/privacy/v1/requests", headers=HEADERS)
    assert [r["channel"] for r in listed.json()["requests"]] == ["clevertap"] * 3
    assert_error(
        await api.client.post(
            "/1/delete/profiles.json", headers=HEADERS, json={"identity": "a", "guid": "g"}
        ),
        400,
    )
    assert_error(await api.client.post("/1/delete/profiles.json", headers=HEADERS, json={"props": 1}), 400)
    assert_error(
        await api.client.post("/1/delete/profiles.json", headers=HEADERS, json={"identity": []}), 400
    )


async def test_direct_intake_waits_for_the_customer_then_runs(api: Api) -> None:
    await write(api.rig.warehouse, [event("ACC-1", identity="dora"), event("ACC-1", identity="other")])
    response = await api.client.post(
        "/privacy/v1/intake/ACC-1", json={"type": "erasure", "subject": {"identity": "dora"}}
    )
    assert response.status_code == 202, response.text
    request_id = response.json()["id"]
    assert response.json()["status"] == "referred"

    await api.rig.run_until_settled()
    assert (await rows_naming(api.rig.warehouse, "ACC-1", ["dora"]))["events"] == 1  # nothing acted on

    pending = (await api.client.get("/privacy/v1/requests?status=referred", headers=HEADERS)).json()[
        "requests"
    ]
    assert [r["id"] for r in pending] == [request_id]
    detail = (await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)).json()
    assert [n["kind"] for n in detail["notices"]] == ["direct_request_received"]

    confirmed = await api.client.post(f"/privacy/v1/requests/{request_id}/confirm", headers=HEADERS)
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "pending"
    assert_error(await api.client.post(f"/privacy/v1/requests/{request_id}/confirm", headers=HEADERS), 409)
    await api.rig.run_until_settled()
    assert (await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)).json()["status"] == (
        "completed"
    )
    assert await rows_naming(api.rig.warehouse, "ACC-1", ["dora"]) == dict.fromkeys(
        ["events", "profiles", "profile_props", "profile_ops", "user_aliases"], 0
    )
    assert (await rows_naming(api.rig.warehouse, "ACC-1", ["other"]))["events"] == 1


async def test_direct_intake_is_rate_limited_and_checked(api: Api) -> None:
    body = {"type": "export", "subject": {"email": "x@example.com"}}
    for _ in range(3):
        assert (await api.client.post("/privacy/v1/intake/ACC-1", json=body)).status_code == 202
    limited = await api.client.post("/privacy/v1/intake/ACC-1", json=body)
    assert_error(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1
    api.monotonic.now += 61
    assert (await api.client.post("/privacy/v1/intake/ACC-1", json=body)).status_code == 202
    api.monotonic.now += 61
    assert_error(await api.client.post("/privacy/v1/intake/NO-SUCH", json=body), 404)
    assert_error(await api.client.post("/privacy/v1/intake/ACC-2", json={"type": "erasure"}), 422)
    assert_error(await api.client.post("/privacy/v1/intake/ACC-2", content=b"x" * 20_000), 413)
    # The limit is per client address too: this client has spent its three.
    assert_error(await api.client.post("/privacy/v1/intake/ACC-2", json=body), 429)
    api.monotonic.now += 61
    # Nothing in the answer tells whether the platform holds anything about the person.
    assert (await api.client.post("/privacy/v1/intake/ACC-2", json=body)).json().keys() == {
        "id",
        "status",
        "received_at",
        "due_at",
    }


async def test_extension_within_the_first_month_with_notice(api: Api) -> None:
    request_id = (await create(api, {"type": "export", "subject": {"identity": "ann"}}))["id"]
    api.rig.clock.advance(days=20)
    response = await api.client.post(
        f"/privacy/v1/requests/{request_id}/extend",
        headers=HEADERS,
        json={"months": 2, "reason": "the subject's data spans several merged profiles"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["extended_until"] == "2026-04-10T23:59:59.999999Z"
    detail = (await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)).json()
    assert detail["extension_reason"] == "the subject's data spans several merged profiles"
    notice = next(n for n in detail["notices"] if n["kind"] == "extension")
    assert notice["payload"]["reason"] == "the subject's data spans several merged profiles"
    assert notice["payload"]["months"] == 2
    assert "extended" in [a["action"] for a in detail["audit"]]


async def test_extension_refused_late_or_too_long(api: Api) -> None:
    request_id = (await create(api, {"type": "export", "subject": {"identity": "ann"}}))["id"]
    path = f"/privacy/v1/requests/{request_id}/extend"
    assert_error(await api.client.post(path, headers=HEADERS, json={"months": 3, "reason": "long"}), 422)
    assert_error(await api.client.post(path, headers=HEADERS, json={"months": 1}), 422)
    api.rig.clock.advance(days=32)
    late = assert_error(
        await api.client.post(path, headers=HEADERS, json={"months": 1, "reason": "late"}), 422
    )
    assert "within" in late["error"]


async def test_overdue_requests_are_listed_counted_and_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    first = (await create(api, {"type": "export", "subject": {"identity": "ann"}}))["id"]
    api.rig.clock.advance(days=10)
    second = (await create(api, {"type": "export", "subject": {"identity": "bea"}}))["id"]
    api.rig.clock.advance(days=26)  # the first is overdue; the second is due within the week
    overdue = (await api.client.get("/privacy/v1/requests?overdue=true", headers=HEADERS)).json()["requests"]
    assert [r["id"] for r in overdue] == [first]
    assert overdue[0]["overdue"] is True
    on_time = (await api.client.get("/privacy/v1/requests?overdue=false", headers=HEADERS)).json()["requests"]
    assert [r["id"] for r in on_time] == [second]
    with caplog.at_level("WARNING"):
        assert await api.rig.worker.refresh_deadline_metrics() == (1, 1)
    assert _sample("tapwire_privacy_requests_overdue") == 1
    assert _sample("tapwire_privacy_requests_near_due") == 1
    logged = [r for r in caplog.records if r.getMessage() == "privacy request overdue"]
    assert [r.__dict__["request"] for r in logged] == [first]
    assert_error(await api.client.get("/privacy/v1/requests?status=sleeping", headers=HEADERS), 422)


async def test_inventory_covers_every_table_and_column(api: Api) -> None:
    response = await api.client.get("/privacy/v1/inventory", headers=HEADERS)
    assert response.status_code == 200
    stores = response.json()["stores"]
    tables = {(s["store"], s["table"]) for s in stores}
    assert {("warehouse", "events"), ("warehouse", "user_aliases"), ("control", "privacy_requests")} <= tables
    unclassified = [
        (s["table"], c["name"]) for s in stores for c in s["columns"] if c["category"] == "unclassified"
    ]
    assert unclassified == []
    events = next(s for s in stores if s["table"] == "events")
    assert {c["name"]: c["category"] for c in events["columns"]}["email"] == "contact"
    assert all(s["retention"] != "unclassified" for s in stores)


def _sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_a_referred_request_can_be_denied_with_its_basis(api: Api) -> None:
    response = await api.client.post(
        "/privacy/v1/intake/ACC-1", json={"type": "erasure", "subject": {"identity": "mallory"}}
    )
    request_id = response.json()["id"]
    path = f"/privacy/v1/requests/{request_id}"
    denied = await api.client.post(f"{path}/deny", headers=HEADERS, json={"basis": "identity not verified"})
    assert denied.status_code == 200, denied.text
    assert denied.json()["status"] == "denied" and denied.json()["denial_basis"] == "identity not verified"
    assert_error(await api.client.post(f"{path}/confirm", headers=HEADERS), 409)
    assert_error(await api.client.post(f"{path}/deny", headers=HEADERS, json={"basis": "again"}), 409)
    assert (
        await api.rig.repository.working_sets.get(request_id) is None
    )  # the identifiers are gone with the request
    assert (await api.client.get(f"{path}", headers=HEADERS)).json()["overdue"] is False

"""Push to every device of a user, against FCM-HTTP-v1- and APNs-shaped receivers on 127.0.0.1 (OAuth access
tokens and HTTP/2 with provider tokens, as the real services require).

A campaign with ``send_to_all_devices`` writes one outbox row, with its own idempotency key, per live device
token; without it, a push goes to the user's most recently uploaded token. A token the provider reports gone
(FCM ``UNREGISTERED`` with 404, APNs 410) is dropped without touching the user's other devices. A restart that
finds rows left ``sending`` re-sends only those, under the same key, and filling the campaign again adds nothing.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tapwire_core.control.messaging.models import CampaignRow, OutboxRow
from tapwire_messaging.delivery.messages import idempotency_key
from tapwire_messaging.recipients import device_id
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.push_receivers import FCM_PROJECT, push_providers
from tests.messaging.rig import Rig, add_profiles, add_push_tokens, messaging_rig, settings_for, wait_finished
from tests.messaging.servers import Received

pytestmark = pytest.mark.integration

FCM_GONE = {
    "error": {
        "code": 404,
        "message": "Requested entity was not found.",
        "status": "NOT_FOUND",
        "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}
        ],
    }
}
DEAD_FCM, DEAD_APNS = "fcm-ann-dead", "apns-bob-dead"


def fcm_answer(request: Received, _n: int) -> tuple[int, dict[str, Any]]:
    assert request.path == f"/v1/projects/{FCM_PROJECT}/messages:send"
    token = request.json()["message"]["token"]
    if token == DEAD_FCM:
        return 404, FCM_GONE
    return 200, {"name": f"projects/{FCM_PROJECT}/messages/{token}"}


def apns_answer(request: Received) -> tuple[int, dict[str, Any]]:
    assert request.path.startswith("/3/device/")
    if request.path.endswith(DEAD_APNS):
        return 410, {"reason": "Unregistered", "timestamp": int(time.time() * 1000)}
    return 200, {}


def push(**extra: Any) -> dict[str, Any]:
    return {"name": "p", "target_mode": "push", "where": {}, "content": {"title": "T", "body": "B"}} | extra


async def _users(rig: Rig) -> None:
    now = int(time.time() * 1000)
    await add_profiles(rig.warehouse, [("i:ann", {}), ("i:bob", {}), ("i:cy", {})])
    await add_push_tokens(
        rig.warehouse,
        [("i:ann", "fcm-ann-1", "fcm"), ("i:ann", DEAD_FCM, "fcm"), ("i:bob", DEAD_APNS, "apns")],
        ts_ms=now - 3000,
    )
    await add_push_tokens(
        rig.warehouse, [("i:ann", "apns-ann-2", "apns"), ("i:bob", "fcm-bob-1", "fcm")], ts_ms=now - 2000
    )
    # Cy's only token is a Windows one: no provider here reaches it.
    await add_push_tokens(rig.warehouse, [("i:cy", "wns-cy", "wns")], ts_ms=now - 1000)


def _sent_tokens(fcm: Sequence[Received], apns: Sequence[Received]) -> Counter[str]:
    return Counter(
        [r.json()["message"]["token"] for r in fcm] + [r.path.removeprefix("/3/device/") for r in apns]
    )


async def test_send_to_all_devices_reaches_every_live_token_and_drops_only_the_unregistered_ones(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with push_providers(tmp_path, fcm_answer=fcm_answer, apns_answer=apns_answer) as providers:
        fcm, apns = providers.fcm, providers.apns
        settings = settings_for(tmp_path, None, **providers.settings)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await _users(rig)
            created = await rig.post("/1/targets/create.json", push(send_to_all_devices=True))
            first = await wait_finished(rig, created.json()["id"])
            first_sends = _sent_tokens(fcm.requests, apns.requests)
            fcm.requests.clear()
            apns.requests.clear()
            again = await rig.post("/1/targets/create.json", push(send_to_all_devices=True))
            second = await wait_finished(rig, again.json()["id"])
            second_sends = _sent_tokens(fcm.requests, apns.requests)
            fcm.requests.clear()
            apns.requests.clear()
            latest = await wait_finished(rig, (await rig.post("/1/targets/create.json", push())).json()["id"])
            latest_sends = _sent_tokens(fcm.requests, apns.requests)
            async with rig.service.store.engine.connect() as connection:
                rows = (
                    await connection.execute(
                        select(
                            OutboxRow.user_key, OutboxRow.address, OutboxRow.device, OutboxRow.status
                        ).where(OutboxRow.campaign_id == created.json()["id"])
                    )
                ).all()

    # Every device once, the two gone tokens included (nobody knew yet); the others were not held back by them.
    assert first_sends == Counter(["fcm-ann-1", DEAD_FCM, "apns-ann-2", DEAD_APNS, "fcm-bob-1"])
    assert (first["sent"], first["failed"], first["no_address"]) == (3, 2, 1)
    assert {(u, a): (d, s) for u, a, d, s in rows} == {
        ("i:ann", "fcm-ann-1"): (device_id("fcm-ann-1"), "sent"),
        ("i:ann", DEAD_FCM): (device_id(DEAD_FCM), "unregistered"),
        ("i:ann", "apns-ann-2"): (device_id("apns-ann-2"), "sent"),
        ("i:bob", DEAD_APNS): (device_id(DEAD_APNS), "unregistered"),
        ("i:bob", "fcm-bob-1"): (device_id("fcm-bob-1"), "sent"),
        ("i:cy", ""): ("", "no_address"),
    }
    # Next time the gone tokens are left out; each user's other devices still get it.
    assert second_sends == Counter(["fcm-ann-1", "apns-ann-2", "fcm-bob-1"])
    assert (second["sent"], second["failed"]) == (3, 0)
    # Without send_to_all_devices: the most recent live token per user (Ann's APNs, Bob's FCM).
    assert latest_sends == Counter(["apns-ann-2", "fcm-bob-1"])
    assert (latest["sent"], latest["no_address"]) == (2, 1)


async def test_restart_resends_only_rows_left_in_flight_under_the_same_key_and_refills_nothing(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with push_providers(tmp_path, fcm_answer=fcm_answer, apns_answer=apns_answer) as providers:
        fcm, apns = providers.fcm, providers.apns
        settings = settings_for(tmp_path, None, **providers.settings)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await _users(rig)
            created = await rig.post("/1/targets/create.json", push(send_to_all_devices=True))
            campaign_id = created.json()["id"]
            await wait_finished(rig, campaign_id)
            # What a SIGKILL during the campaign leaves: the fill not marked done, and Ann's APNs message
            # handed to the provider but its outcome not written, under a lease that has run out.
            async with rig.service.store.engine.begin() as connection:
                await connection.execute(
                    update(CampaignRow)
                    .where(CampaignRow.id == campaign_id)
                    .values(status="running", filled=0, finished_ms=None)
                )
                await connection.execute(
                    update(OutboxRow)
                    .where(OutboxRow.campaign_id == campaign_id, OutboxRow.address == "apns-ann-2")
                    .values(status="sending", lease_until_ms=1, claimed_by="killed-sender", sent_ms=None)
                )
        fcm_before, apns_before = len(fcm.requests), len(apns.requests)
        # A new device of Bob's, uploaded while the campaign was interrupted: the refill gives it its own row.
        await add_push_tokens(warehouse, [("i:bob", "apns-bob-new", "apns")])
        async with messaging_rig(tmp_path, warehouse, settings) as restarted:
            result = await wait_finished(restarted, campaign_id)
            async with restarted.service.store.engine.connect() as connection:
                rows = (
                    await connection.execute(
                        select(OutboxRow.address).where(OutboxRow.campaign_id == campaign_id)
                    )
                ).all()

    assert fcm.requests[fcm_before:] == []
    resent = apns.requests[apns_before:]
    assert sorted(r.path for r in resent) == ["/3/device/apns-ann-2", "/3/device/apns-bob-new"]
    # The repeat carries the first send's apns-id: the key names the device, so APNs can drop it.
    ids = {r.path: r.headers["apns-id"] for r in apns.requests}
    key = idempotency_key(campaign_id, "A", "i:ann", "push", device_id("apns-ann-2"))
    assert [r.headers["apns-id"] for r in apns.requests if r.path == "/3/device/apns-ann-2"] == [
        str(uuid.uuid5(uuid.NAMESPACE_URL, key))
    ] * 2
    assert len(set(ids.values())) == len(ids)  # one key per device
    assert sorted(address for (address,) in rows) == sorted(
        ["fcm-ann-1", DEAD_FCM, "apns-ann-2", DEAD_APNS, "fcm-bob-1", "apns-bob-new", ""]
    )
    assert result["status"] == "completed" and result["sent"] == 4


async def test_a_frequency_cap_counts_a_campaign_once_however_many_devices_it_reached(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with push_providers(tmp_path, fcm_answer=fcm_answer, apns_answer=apns_answer) as providers:
        # One row per claim, so each device's row is judged after the previous one was sent.
        settings = settings_for(tmp_path, None, **providers.settings, messaging_claim_batch=1)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await _users(rig)
            capped = push(send_to_all_devices=True, caps=[{"limit": 1, "window_s": 3600}])
            first = await wait_finished(rig, (await rig.post("/1/targets/create.json", capped)).json()["id"])
            second = await wait_finished(rig, (await rig.post("/1/targets/create.json", capped)).json()["id"])
    assert (first["sent"], first["failed"], first["capped"]) == (3, 2, 0)
    assert (second["sent"], second["capped"]) == (0, 3)

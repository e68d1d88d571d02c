"""Campaign audiences through the CQL compiler: a ``where`` with a profile-property filter, a saved segment, and
an unknown segment refused at creation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tapwire_query.segments.store import create_segment
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import ACCOUNT, HEADERS, Rig, add_profiles, messaging_rig, settings_for
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration

CITIES = {"i:ann": "Berlin", "i:bob": "Paris", "i:cem": "Berlin", "i:dan": "Rome"}


def _city(name: str) -> dict[str, Any]:
    return {
        "common_profile_properties": {
            "profile_fields": [{"name": "City", "operator": "equals", "value": name}]
        }
    }


async def _run(rig: Rig, audience: dict[str, Any], subject: str) -> dict[str, Any]:
    created = await rig.post(
        "/1/targets/create.json",
        {"name": subject, "target_mode": "email", **audience, "content": {"subject": subject, "body": "Hi"}},
    )
    assert created.status_code == 200, created.text
    for _ in range(600):
        response = await rig.client.get(f"/messaging/v1/campaigns/{created.json()['id']}", headers=HEADERS)
        campaign: dict[str, Any] = response.json()["campaign"]
        if campaign["status"] in ("completed", "stopped"):
            return campaign
        await asyncio.sleep(0.1)
    raise AssertionError(f"campaign {subject} did not finish")


async def test_where_with_a_property_filter_and_a_saved_segment(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(
                warehouse,
                [(key, {"Email": f"{key[2:]}@example.com", "City": city}) for key, city in CITIES.items()],
            )

            estimate = await rig.post(
                "/1/targets/estimate.json",
                {
                    "name": "e",
                    "target_mode": "email",
                    "where": _city("Berlin"),
                    "content": {"subject": "s", "body": "b"},
                },
            )
            assert estimate.status_code == 200, estimate.text
            assert estimate.json()["estimate"]["reach"] == 2

            berlin = await _run(rig, {"where": _city("Berlin")}, "berlin")
            assert berlin["status"] == "completed" and berlin["sent"] == 2

            segment = await create_segment(
                rig.service.store, account_id=ACCOUNT, name="romans", definition=_city("Rome")
            )
            rome = await _run(rig, {"segment_id": segment.id}, "rome")
            assert rome["status"] == "completed" and rome["sent"] == 1

            unknown = await rig.post(
                "/1/targets/create.json",
                {
                    "name": "x",
                    "target_mode": "email",
                    "segment_id": "missing",
                    "content": {"subject": "s", "body": "b"},
                },
            )
    by_subject: dict[str, set[str]] = {}
    for address, mails in sink.by_recipient().items():
        for mail in mails:
            by_subject.setdefault(str(mail["Subject"]), set()).add(address)
    assert by_subject == {"berlin": {"ann@example.com", "cem@example.com"}, "rome": {"dan@example.com"}}
    assert unknown.status_code == 422 and "segment_id: no saved segment 'missing'" in unknown.json()["error"]

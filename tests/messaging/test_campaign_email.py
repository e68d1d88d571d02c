"""A campaign over SMTP end to end: audience from the warehouse, send-time rules, personalisation, one-click
unsubscribe, privacy objection, frequency caps across campaigns, opens and clicks in the report."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tapwire_core.control.messaging import consent
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import ACCOUNT, Rig, add_profiles, messaging_rig, settings_for
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration

USERS = 5000


async def wait_done(rig: Rig, campaign_id: int, timeout_s: float = 120) -> dict[str, Any]:
    assert rig.settings.accounts is not None
    for _ in range(int(timeout_s / 0.1)):
        response = await rig.client.get(
            f"/messaging/v1/campaigns/{campaign_id}",
            headers={
                "X-CleverTap-Account-Id": ACCOUNT,
                "X-CleverTap-Passcode": rig.settings.accounts.split(":")[1],
            },
        )
        campaign = response.json()["campaign"]
        if campaign["status"] in ("completed", "stopped"):
            return dict(campaign)
        await asyncio.sleep(0.1)
    raise AssertionError(f"campaign {campaign_id} did not finish: {campaign}")


def email_campaign(name: str, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "target_mode": "email",
        "where": {},
        "content": {
            "subject": 'Hi {{ Profile.Name | default: "there" }}',
            "body": 'Deals for {{ Profile.Name | default: "you" }}',
        },
        **extra,
    }


async def test_campaign_reaches_exactly_the_eligible_users_once(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    profiles = []
    for i in range(USERS):
        props: dict[str, object] = {"Email": f"user{i}@example.com"}
        if i % 2 == 0:
            props["Name"] = f"User {i}"
        if i % 50 == 1:
            props["MSG-email"] = False
        profiles.append((f"i:user{i}", props))
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url, messaging_senders=8)
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, profiles)
            objected = "i:user7"
            await consent.record_objection(
                rig.service.store.engine,
                account_id=ACCOUNT,
                user_key=objected,
                source="privacy",
                now_ms=rig.service.now_ms(),
            )
            await rig.post(
                "/1/subscribe",
                {"d": [{"type": "email", "value": "USER9@example.com", "status": "Unsubscribe"}]},
            )

            created = await rig.post(
                "/1/targets/create.json",
                email_campaign("spring", control_group_percent=10, caps=[{"limit": 1, "window_s": 3600}]),
            )
            assert created.status_code == 200, created.text
            first = await wait_done(rig, created.json()["id"])

            expected = _eligible(profiles, excluded={objected, "i:user9"}, control=first)
            delivered = sink.by_recipient()
            assert set(delivered) == expected
            assert all(len(messages) == 1 for messages in delivered.values())
            assert len(sink.receipts) == len(expected)
            assert first["sent"] == len(expected)
            assert first["control"] > 0
            assert first["sent"] + first["suppressed"] + first["control"] == USERS

            named = next(i for i in range(0, USERS, 2) if f"user{i}@example.com" in delivered)
            unnamed = next(i for i in range(1, USERS, 2) if f"user{i}@example.com" in delivered)
            mail = delivered[f"user{named}@example.com"][0]
            assert mail["Subject"] == f"Hi User {named}"
            assert mail.get_content().strip() == f"Deals for User {named}"
            assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert delivered[f"user{unnamed}@example.com"][0]["Subject"] == "Hi there"

            # One-click unsubscribe, then a second campaign: that user is suppressed; caps hold everyone else back.
            link = re.fullmatch(
                r"<https://t\.shop\.example(/m/u/[^>]+)>",
                delivered[f"user{named}@example.com"][0]["List-Unsubscribe"],
            )
            assert link is not None
            unsubscribed = await rig.client.post(link.group(1), content=b"List-Unsubscribe=One-Click")
            assert unsubscribed.status_code == 200
            before = len(sink.receipts)
            second = await rig.post(
                "/1/targets/create.json", email_campaign("summer", caps=[{"limit": 1, "window_s": 3600}])
            )
            result = await wait_done(rig, second.json()["id"])
            second_recipients = {str(m["To"]) for m in sink.receipts[before:]}
            # The cap (1 per hour, across campaigns) holds back everyone the first campaign reached; only
            # its control group can be reached now, and never the user who unsubscribed.
            assert second_recipients.isdisjoint(delivered)
            assert f"user{named}@example.com" not in second_recipients
            assert result["sent"] == len(second_recipients) == len(sink.receipts) - before
            assert result["capped"] >= len(expected) - 1 - result["control"]
            assert result["sent"] + result["capped"] + result["suppressed"] + result["control"] == USERS


def _eligible(
    profiles: list[tuple[str, dict[str, object]]], *, excluded: set[str], control: dict[str, Any]
) -> set[str]:
    from tapwire_messaging.rules import in_control_group

    campaign_id = int(control["id"])
    return {
        str(props["Email"])
        for key, props in profiles
        if key not in excluded
        and props.get("MSG-email") is not False
        and not in_control_group(campaign_id, key, 10)
    }

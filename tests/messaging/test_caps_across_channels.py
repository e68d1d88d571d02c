"""An account-wide frequency cap on channel ``all``: one budget per user summed over email, SMS and webhook
campaigns, on real stores with a local SMTP sink and HTTP receivers for the SMS provider and the webhook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import Rig, add_profiles, messaging_rig, settings_for, wait_finished
from tests.messaging.servers import http_receiver, smtp_sink

pytestmark = pytest.mark.integration

HOOK_SECRET = "hook-secret-0123456789abcdef"
DAY_S = 86400


async def _run(rig: Rig, campaign: dict[str, Any]) -> dict[str, Any]:
    created = await rig.post("/messaging/v1/campaigns", {"where": {}} | campaign)
    assert created.status_code == 201, created.text
    return await wait_finished(rig, created.json()["id"])


async def _set_account_caps(rig: Rig, caps: dict[str, Any]) -> None:
    account_id, passcode, write_key = str(rig.settings.accounts).split(":")
    await rig.service.store.upsert_account(
        account_id, passcode=passcode, write_key=write_key, region="eu1", settings={"frequency_caps": caps}
    )


async def test_a_cap_on_all_channels_sums_email_sms_and_webhook_messages(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with (
        smtp_sink() as sink,
        http_receiver(lambda _r, n: (201, {"sid": f"SM{n}"})) as twilio,
        http_receiver(lambda _r, _n: (200, {"ok": True})) as hooks,
    ):
        sms_url = (
            f"http://AC1:tok@127.0.0.1:{twilio.port}/2010-04-01/Accounts/AC1/Messages.json?From=%2B15550001"
        )
        async with messaging_rig(
            tmp_path, warehouse, settings_for(tmp_path, sink.url, sms_url=sms_url)
        ) as rig:
            # Two messages a day per user whatever the channel; each channel alone allows more.
            await _set_account_caps(
                rig,
                {
                    "all": [{"limit": 2, "window_s": DAY_S}],
                    "email": [{"limit": 5, "window_s": DAY_S}],
                    "webhook": [{"limit": 5, "window_s": DAY_S}],
                },
            )
            await add_profiles(
                warehouse,
                [
                    *[
                        (f"i:both{i}", {"Email": f"both{i}@example.com", "Phone": f"+49151000000{i}"})
                        for i in range(3)
                    ],
                    ("i:phone", {"Phone": "+4915100000099"}),  # no email: one message before the webhook
                ],
            )
            email = await _run(
                rig, {"name": "e", "channel": "email", "content": {"subject": "s", "body": "b"}}
            )
            sms = await _run(rig, {"name": "s", "channel": "sms", "content": {"body": "b"}})
            hook = {"url": f"{hooks.url}/in", "secret": HOOK_SECRET}
            webhook = await _run(rig, {"name": "w", "channel": "webhook", "content": {}, "webhook": hook})
            exempt = await _run(
                rig,
                {
                    "name": "w2",
                    "channel": "webhook",
                    "content": {},
                    "webhook": hook,
                    "respect_frequency_caps": False,
                },
            )
    assert (email["sent"], email["no_address"], sms["sent"]) == (3, 1, 4)
    # The third message of the day is over the summed cap for the users mailed and texted; the user who was
    # only texted has one left.
    assert (webhook["sent"], webhook["capped"]) == (1, 3)
    assert exempt["sent"] == 4
    assert len(sink.receipts) == 3 and len(twilio.requests) == 4
    reached = [request.json()["user_key"] for request in hooks.requests]
    assert sorted(reached) == ["i:both0", "i:both1", "i:both2", "i:phone", "i:phone"]


async def test_a_campaign_cap_across_channels_counts_the_other_channels_messages(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with (
        smtp_sink() as sink,
        http_receiver(lambda _r, n: (201, {"sid": f"SM{n}"})) as twilio,
    ):
        sms_url = (
            f"http://AC1:tok@127.0.0.1:{twilio.port}/2010-04-01/Accounts/AC1/Messages.json?From=%2B15550001"
        )
        async with messaging_rig(
            tmp_path, warehouse, settings_for(tmp_path, sink.url, sms_url=sms_url)
        ) as rig:
            await add_profiles(
                warehouse, [("i:ann", {"Email": "ann@example.com", "Phone": "+4915100000001"})]
            )
            await _run(rig, {"name": "e", "channel": "email", "content": {"subject": "s", "body": "b"}})
            on_channel = await _run(
                rig,
                {
                    "name": "s1",
                    "channel": "sms",
                    "content": {"body": "b"},
                    "caps": [{"limit": 1, "window_s": DAY_S}],
                },
            )
            across = await _run(
                rig,
                {
                    "name": "s2",
                    "channel": "sms",
                    "content": {"body": "b"},
                    "caps": [{"limit": 2, "window_s": DAY_S, "channel": "all"}],
                },
            )
    # The per-channel cap saw no earlier SMS; the cap across channels saw the email and the first SMS.
    assert (on_channel["sent"], across["sent"], across["capped"]) == (1, 0, 1)
    assert len(sink.receipts) == 1 and len(twilio.requests) == 1

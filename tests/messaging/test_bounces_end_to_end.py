"""Bounces and complaints from a real campaign to the next one: the SMTP server refuses one recipient (550), an
MTA mails a DSN to another message's VERP return path and a feedback loop mails an ARF report quoting a third
message's Message-ID, both to the bounce mailbox over SMTP. The three addresses are suppressed, the events are
on the bus, and the next campaign goes to the others only."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from tapwire_core.control.messaging.models import OutboxRow
from tests.infra.clickhouse import WarehouseFactory
from tests.integration.processes import free_port
from tests.messaging.email_reports import arf, dsn
from tests.messaging.feedback_checks import (
    BOUNCE_ADDRESS,
    USERS,
    feedback_events,
    next_campaign,
    reasons,
    suppression,
)
from tests.messaging.rig import add_profiles, messaging_rig, settings_for, wait_finished
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration


async def test_refusals_dsns_and_arf_reports_suppress_before_the_next_campaign(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    port = free_port()
    with smtp_sink() as sink:
        sink.reject_rcpt.add("dan@example.com")
        settings = settings_for(
            tmp_path,
            sink.url,
            bounce_address=BOUNCE_ADDRESS,
            bounce_smtp_port=port,
            bounce_smtp_host="127.0.0.1",
        )
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, [(f"i:{u}", {"Email": f"{u}@example.com"}) for u in USERS])
            created = await rig.post(
                "/messaging/v1/campaigns",
                {
                    "name": "Spring",
                    "channel": "email",
                    "where": {},
                    "content": {"subject": "Hi", "body": "Sale"},
                },
            )
            campaign_id = created.json()["id"]
            await wait_finished(rig, campaign_id)
            async with rig.service.store.engine.connect() as connection:
                rows = await connection.execute(
                    select(OutboxRow.user_key, OutboxRow.status).where(OutboxRow.campaign_id == campaign_id)
                )
                statuses = {key[2:]: status for key, status in rows}
            assert statuses == {
                "ann": "sent",
                "bob": "sent",
                "cat": "sent",
                "dan": "unregistered",
                "eve": "sent",
            }
            assert await reasons(rig) == {"dan": "hard_bounce"}
            assert (await suppression(rig, "dan"))["feedback"][0]["source"] == "smtp"

            # Each message names itself: its envelope sender is its VERP address, its Message-ID the same token.
            sent = {
                str(m["To"]): (e.mail_from, str(m["Message-ID"]))
                for m, e in zip(sink.receipts, sink.envelopes, strict=True)
            }
            for user in ("ann", "bob", "cat", "eve"):
                mail_from, message_id = sent[f"{user}@example.com"]
                token = mail_from.removeprefix("bounces+").removesuffix("@bounce.shop.example")
                assert token.startswith("tw") and f".{token}@" in message_id
            ann_verp, _ = sent["ann@example.com"]
            _, bob_message_id = sent["bob@example.com"]

            def report() -> None:
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                    client.sendmail(
                        "", [ann_verp], dsn(to=ann_verp, recipient="ann@example.com", message_id="<lost@x>")
                    )
                    client.sendmail(
                        "",
                        [BOUNCE_ADDRESS],
                        arf(to=BOUNCE_ADDRESS, recipient="bob@example.com", message_id=bob_message_id),
                    )

            await asyncio.to_thread(report)
            assert await reasons(rig) == {"ann": "hard_bounce", "bob": "complaint", "dan": "hard_bounce"}
            events = await feedback_events(rig)
            assert sorted(
                (e.ids.identity, e.name, e.properties.get("bounce_type"), e.properties["source"])
                for e in events
            ) == [
                ("ann", "Notification Bounced", "hard", "dsn"),
                ("bob", "Notification Complained", None, "arf"),
                ("dan", "Notification Bounced", "hard", "smtp"),
            ]
            assert all(e.properties["campaign_id"] == campaign_id for e in events)

            received = len(sink.receipts)
            assert await next_campaign(rig) == {
                "ann": "suppressed",
                "bob": "suppressed",
                "cat": "sent",
                "dan": "suppressed",
                "eve": "sent",
            }
            assert sorted(str(m["To"]) for m in sink.receipts[received:]) == [
                "cat@example.com",
                "eve@example.com",
            ]

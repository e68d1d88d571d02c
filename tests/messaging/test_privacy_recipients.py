"""Messaging's recipients of a subject's data per channel, read from the delivery records (real SQLite store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging.models import OutboxRow
from tapwire_core.control.store import ControlStore
from tapwire_core.privacy.data_recipients import ForwardImpossible
from tapwire_core.privacy.scope import Scope
from tapwire_core.settings import Settings
from tapwire_messaging.data_recipients import messaging_data_recipients
from tests.credentials import LOOKUP_DIGESTS
from tests.messaging.seeding import completed_campaign

pytestmark = pytest.mark.integration


async def test_push_sms_and_webhook_recipients_come_from_sent_messages(tmp_path: Path) -> None:
    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    try:
        await store.upsert_account(
            "ACC-1", passcode="passcode-1-0123456789", write_key="writekey-1-0123456789", region="eu1"
        )
        async with AsyncSession(store.engine) as session, session.begin():
            campaign = await completed_campaign(session, name="c", channel="push")
            rows = [
                ("i:ann", "push", "tok-ios", "apns", "sent"),
                ("i:ann", "sms", "+4915100000009", None, "sent"),
                ("i:ann", "webhook", "https://hooks.shop.example/in?key=secret", None, "sent"),
                ("i:ann", "email", "ann@example.com", None, "suppressed"),  # never left: no recipient
                ("i:bob", "push", "tok-bob", "fcm", "sent"),
            ]
            for user, channel, address, platform, status in rows:
                session.add(
                    OutboxRow(
                        campaign_id=campaign.id,
                        account_id="ACC-1",
                        variant="a",
                        user_key=user,
                        channel=channel,
                        address=address,
                        platform=platform,
                        context={},
                        status=status,
                        due_ms=1,
                    )
                )
        settings = Settings(
            data_dir=tmp_path,
            smtp_url="smtp://user:pw@mail.example:2525",
            apns_url="https://apns.example:8443/3/device",
            fcm_url="https://fcm.example/v1",
            sms_url="https://sms.example/2010-04-01",
        )
        scope = Scope("r1", "ACC-1", frozenset({"i:ann"}))
        received = {
            r.name: await r.received(scope) for r in messaging_data_recipients(store.engine, settings)
        }
        assert received == {
            "messaging.email": [],
            "messaging.push": [
                {
                    "channel": "push",
                    "provider": "APNs apns.example:8443",
                    "messages": 1,
                    "addresses": ["tok-ios"],
                }
            ],
            "messaging.sms": [
                {
                    "channel": "sms",
                    "provider": "SMS provider sms.example",
                    "messages": 1,
                    "addresses": ["+4915100000009"],
                }
            ],
            "messaging.webhook": [
                {
                    "channel": "webhook",
                    "provider": "webhook hooks.shop.example",
                    "messages": 1,
                    "addresses": ["hooks.shop.example"],
                }
            ],
        }
        for recipient in messaging_data_recipients(store.engine, settings):
            with pytest.raises(ForwardImpossible):
                await recipient.forward("rectify", scope, {"Name": "Ann B."})
            if recipient.name != "messaging.sms":
                with pytest.raises(ForwardImpossible):
                    await recipient.forward("erasure", scope, None)
        # The SMS provider deletes message records by their SID; a message it never answered with one is
        # counted, not sent for (tests/privacy/test_sms_forwarding.py covers the deletions).
        sms = next(r for r in messaging_data_recipients(store.engine, settings) if r.name == "messaging.sms")
        assert await sms.forward("erasure", scope, None) == {
            "messages": 0,
            "deleted": 0,
            "already_gone": 0,
            "without_id": 1,
        }
    finally:
        await store.close()

"""Promotional campaigns and transactional sends to the same people, on real stores through the HTTP API with a
local SMTP server: unsubscribes, objections and the profile's subscription flags stop the campaign but not the
receipt; an explicit opt-out of email, a hard bounce and an erasure stop both."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging import consent
from tapwire_core.control.privacy.models import SuppressionRow
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import ACCOUNT, Rig, add_profiles, messaging_rig, settings_for, wait_finished
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration

PEOPLE = {
    "fine": {},
    "unsubscribed": {},
    "objector": {},
    "flagged": {"MSG-email": False},
    "dnd": {"MSG-dndEmail": True},
    "opted-out": {},
    "opted-out-then-unsubscribed": {},
    "bounced": {},
    "erased": {},
}


def _address(name: str) -> str:
    return f"{name}@example.com"


async def _subscription(rig: Rig, name: str, status: str) -> None:
    response = await rig.post(
        "/1/subscribe", {"d": [{"type": "email", "value": _address(name), "status": status}]}
    )
    assert response.json()["status"] == "success", response.text


async def _erase(rig: Rig, name: str) -> None:
    """What the privacy worker does first when it erases a person: list their identifiers as suppressed."""
    async with AsyncSession(rig.service.store.engine) as session, session.begin():
        salt = await deployment_secret(session, IDENTIFIER_SALT)
        now = dt.datetime.now(dt.UTC)
        for key in (f"i:{name}", f"e:{_address(name)}"):
            session.add(
                SuppressionRow(
                    account_id=ACCOUNT,
                    key_hash=key_hash(salt, ACCOUNT, key),
                    request_id="req-erase",
                    created_at=now,
                    expires_at=now + dt.timedelta(days=30),
                )
            )


async def test_objections_and_unsubscribes_stop_promotions_while_receipts_still_go(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        sink.reject_rcpt.add(_address("bounced"))
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(
                warehouse,
                [(f"i:{name}", {"Email": _address(name), **flags}) for name, flags in PEOPLE.items()],
            )
            await _subscription(rig, "unsubscribed", "Unsubscribe")
            await consent.record_objection(
                rig.service.store.engine, account_id=ACCOUNT, user_key="i:objector", source="test", now_ms=1
            )
            await _subscription(rig, "opted-out", "OptOut")
            await _subscription(rig, "opted-out-then-unsubscribed", "OptOut")
            await _subscription(rig, "opted-out-then-unsubscribed", "Unsubscribe")

            # The first campaign meets the refused address: a hard bounce, which suppresses it at once.
            first = await rig.post(
                "/messaging/v1/campaigns",
                {
                    "name": "spring sale",
                    "channel": "email",
                    "where": {},
                    "content": {"subject": "Sale", "body": "b"},
                },
            )
            promotional = await wait_finished(rig, first.json()["id"])
            promoted = sorted(str(m["To"]) for m in sink.receipts)
            sink.receipts.clear()

            await _erase(rig, "erased")
            receipt = await rig.post(
                "/1/send/email.json",
                {
                    "to": {"Identity": list(PEOPLE)},
                    "content": {"subject": "Your receipt", "body": "Order {{ Event.Order }}"},
                    "event": {"Order": 17},
                },
            )
            assert receipt.status_code == 200, receipt.text
            transactional = await wait_finished(rig, receipt.json()["id"])
            receipted = sorted(str(m["To"]) for m in sink.receipts)
            # And the next promotion: the bounce and the erasure now stop it as well.
            sink.receipts.clear()
            second = await rig.post(
                "/messaging/v1/campaigns",
                {
                    "name": "summer sale",
                    "channel": "email",
                    "where": {},
                    "content": {"subject": "Sale", "body": "b"},
                },
            )
            again = await wait_finished(rig, second.json()["id"])
            promoted_again = sorted(str(m["To"]) for m in sink.receipts)

    assert promoted == [_address("erased"), _address("fine")]
    assert (promotional["sent"], promotional["failed"]) == (2, 1)
    assert receipted == sorted(
        _address(name) for name in ("fine", "unsubscribed", "objector", "flagged", "dnd")
    )
    assert (transactional["sent"], transactional["suppressed"]) == (5, 4)
    assert promoted_again == [_address("fine")]
    assert again["sent"] == 1

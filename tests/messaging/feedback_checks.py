"""Checks shared by the email feedback tests: who is suppressed, what a new campaign does, which feedback
events reached the bus."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select

from tapwire_core.control.messaging.models import OutboxRow
from tapwire_core.envelope import decode
from tests.messaging.rig import HEADERS, Rig, wait_finished

USERS = ("ann", "bob", "cat", "dan", "eve")
BOUNCE_ADDRESS = "bounces@bounce.shop.example"


async def next_campaign(rig: Rig) -> dict[str, str]:
    """Each user's outcome in a new email campaign to everyone."""
    created = await rig.post(
        "/messaging/v1/campaigns",
        {"name": "Again", "channel": "email", "where": {}, "content": {"subject": "Hi", "body": "More"}},
    )
    campaign_id = created.json()["id"]
    await wait_finished(rig, campaign_id)
    async with rig.service.store.engine.connect() as connection:
        rows = await connection.execute(
            select(OutboxRow.user_key, OutboxRow.status).where(OutboxRow.campaign_id == campaign_id)
        )
        return {key[2:]: status for key, status in rows}


async def suppression(rig: Rig, user: str) -> dict[str, Any]:
    response = await rig.client.get(
        "/messaging/v1/email-suppressions", params={"address": f"{user}@example.com"}, headers=HEADERS
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def reasons(rig: Rig) -> dict[str, str]:
    found = {}
    for user in USERS:
        state = await suppression(rig, user)
        if state["suppressed"]:
            found[user] = state["suppression"]["reason"]
    return found


EMAIL_FEEDBACK = ("Notification Bounced", "Notification Complained", "Notification Delivered")


async def feedback_events(rig: Rig, names: Collection[str] = EMAIL_FEEDBACK) -> list[Any]:
    """Every event named in ``names`` on the events topic so far (each call reads the topic from its start)."""
    consumer = rig.service.bus.consumer([rig.settings.events_topic], "test-email-feedback")  # type: ignore[union-attr]
    await consumer.start()
    found: list[Any] = []
    try:
        for _ in range(5):
            found += [decode(d.value) for d in await consumer.fetch(1000, 0.1)]
    finally:
        await consumer.close()
    return [e for e in found if e.name in names]

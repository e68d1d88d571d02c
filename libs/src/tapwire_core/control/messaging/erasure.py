"""Erasing one user's personal data from the messaging tables (called by the privacy worker on erasure).

Outbox rows keep their key, status and times (the campaign's counts stay right) but lose the address and the
profile snapshot; interactions are deleted. Consent entries are kept on purpose: a suppression must outlive the
profile, or an erased user who objected would be messaged again after re-importing.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.messaging.models import InteractionRow, OutboxRow


async def erase_user(engine: AsyncEngine, *, account_id: str, user_key: str) -> int:
    """Strip ``user_key``'s personal data from the outbox and drop its interactions; returns outbox rows touched."""
    async with engine.begin() as connection:
        touched = await connection.execute(
            update(OutboxRow)
            .where(OutboxRow.account_id == account_id, OutboxRow.user_key == user_key)
            .values(address="", context={}, detail=None)
        )
        await connection.execute(
            delete(InteractionRow).where(
                InteractionRow.user_key == user_key,
                InteractionRow.campaign_id.in_(
                    select(OutboxRow.campaign_id).where(
                        OutboxRow.account_id == account_id, OutboxRow.user_key == user_key
                    )
                ),
            )
        )
    return int(touched.rowcount or 0)

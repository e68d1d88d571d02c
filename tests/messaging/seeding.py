"""Control-plane rows for tests that need a campaign already sent: its outbox rows point at it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging.models import CampaignRow


async def completed_campaign(
    session: AsyncSession, *, name: str, channel: str, audience: dict[str, Any] | None = None
) -> CampaignRow:
    """A completed campaign of account ``ACC-1``, flushed so that its id is set."""
    campaign = CampaignRow(
        account_id="ACC-1",
        name=name,
        kind="campaign",
        channel=channel,
        status="completed",
        audience=audience or {"where": {}},
        variants=[],
        rules={},
        scheduled_ms=1,
        cutoff_ms=2,
    )
    session.add(campaign)
    await session.flush()
    return campaign

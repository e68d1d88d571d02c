"""Campaign rows in the control-plane database, and their life: scheduled → running → completed or stopped.

A campaign is created ``scheduled``; the sender's scheduler starts it (``running``) when its time comes, fills
its outbox (``filled``), and marks it ``completed`` once no row is pending or in flight. Stopping moves a
scheduled or running campaign to ``stopped`` and its pending rows with it. Every transition is a conditional
``UPDATE``, so concurrent senders (and the API) may race on it harmlessly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tapwire_core.control.accounts.models import AccountRow
from tapwire_core.control.messaging.models import CampaignRow, OutboxRow
from tapwire_messaging.campaign_rules import ACROSS_CHANNELS, CampaignRules, FrequencyCap
from tapwire_messaging.campaigns import CampaignSpec

CONTINUOUS_FILL = 2
"""``filled`` of a triggered campaign (or a journey's step): its trigger writes outbox rows as events come, so
the scheduler never fills it (``filled == 0``) nor completes it (``filled == 1``); it runs until stopped."""


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    account_id: str
    name: str
    kind: str
    channel: str
    status: str
    priority: int
    audience: dict[str, Any]
    variants: list[dict[str, Any]]
    rules: CampaignRules
    scheduled_ms: int
    cutoff_ms: int
    filled: bool
    audience_size: int
    started_ms: int | None
    finished_ms: int | None


def _campaign(row: CampaignRow) -> Campaign:
    return Campaign(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        kind=row.kind,
        channel=row.channel,
        status=row.status,
        priority=row.priority,
        audience=row.audience,
        variants=row.variants,
        rules=CampaignRules.from_json(row.rules),
        scheduled_ms=row.scheduled_ms,
        cutoff_ms=row.cutoff_ms,
        filled=bool(row.filled),
        audience_size=row.audience_size,
        started_ms=row.started_ms,
        finished_ms=row.finished_ms,
    )


async def insert_campaign(connection: AsyncConnection, account_id: str, spec: CampaignSpec) -> int:
    """Insert a campaign in the caller's transaction: ``scheduled``, or ``running`` with a continuous fill when
    its rows come from a trigger or a journey's step rather than from one fill."""
    continuous = "trigger" in spec.audience or "journey" in spec.audience
    result = await connection.execute(
        insert(CampaignRow)
        .values(
            account_id=account_id,
            name=spec.name,
            kind=spec.kind,
            channel=spec.channel,
            status="running" if continuous else "scheduled",
            filled=CONTINUOUS_FILL if continuous else 0,
            started_ms=spec.scheduled_ms if continuous else None,
            priority=spec.priority,
            audience=spec.audience,
            variants=spec.variants,
            rules=spec.rules.to_json(),
            scheduled_ms=spec.scheduled_ms,
            cutoff_ms=spec.cutoff_ms,
        )
        .returning(CampaignRow.id)
    )
    return int(result.scalar_one())


class Campaigns:
    """The campaigns table. Every method is one short transaction; none blocks on another sender."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, account_id: str, spec: CampaignSpec) -> int:
        """Store a new campaign: ``scheduled``, or ``running`` with a continuous fill when it is triggered."""
        async with self.engine.begin() as connection:
            return await insert_campaign(connection, account_id, spec)

    async def get(self, campaign_id: int, account_id: str | None = None) -> Campaign | None:
        """The campaign, or None when there is none (or it belongs to another account than ``account_id``)."""
        statement = select(CampaignRow).where(CampaignRow.id == campaign_id)
        if account_id is not None:
            statement = statement.where(CampaignRow.account_id == account_id)
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return _campaign(CampaignRow(**row._mapping)) if row else None

    async def of_account(
        self, account_id: str, *, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[Campaign]:
        """The account's campaigns scheduled in [``start_ms``, ``end_ms``), oldest first."""
        statement = select(CampaignRow).where(CampaignRow.account_id == account_id)
        if start_ms is not None:
            statement = statement.where(CampaignRow.scheduled_ms >= start_ms)
        if end_ms is not None:
            statement = statement.where(CampaignRow.scheduled_ms < end_ms)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement.order_by(CampaignRow.id))).all()
        return [_campaign(CampaignRow(**row._mapping)) for row in rows]

    async def due_for_fill(self, now_ms: int) -> list[Campaign]:
        """Campaigns whose start has come and whose outbox is not filled yet (including a fill cut short by a
        crash: filling again is idempotent)."""
        statement = select(CampaignRow).where(
            CampaignRow.status.in_(("scheduled", "running")),
            CampaignRow.filled == 0,
            CampaignRow.scheduled_ms <= now_ms,
        )
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(statement.order_by(CampaignRow.priority.desc(), CampaignRow.id))
            ).all()
        return [_campaign(CampaignRow(**row._mapping)) for row in rows]

    async def start(self, campaign_id: int, now_ms: int) -> None:
        """A scheduled campaign becomes running (a running one is left as it is)."""
        async with self.engine.begin() as connection:
            await connection.execute(
                update(CampaignRow)
                .where(CampaignRow.id == campaign_id, CampaignRow.status == "scheduled")
                .values(status="running", started_ms=now_ms)
            )

    async def mark_filled(self, campaign_id: int, audience_size: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(CampaignRow)
                .where(CampaignRow.id == campaign_id)
                .values(filled=1, audience_size=audience_size)
            )

    async def stop(self, campaign_id: int, now_ms: int) -> bool:
        """Stop a scheduled or running campaign: its pending rows become ``stopped``. False when already over."""
        async with self.engine.begin() as connection:
            changed = await connection.execute(
                update(CampaignRow)
                .where(CampaignRow.id == campaign_id, CampaignRow.status.in_(("scheduled", "running")))
                .values(status="stopped", finished_ms=now_ms)
            )
            await connection.execute(
                update(OutboxRow)
                .where(OutboxRow.campaign_id == campaign_id, OutboxRow.status == "pending")
                .values(status="stopped")
            )
        return bool(changed.rowcount)

    async def stopped_among(self, campaign_ids: Sequence[int]) -> set[int]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(CampaignRow.id).where(
                    CampaignRow.id.in_(list(campaign_ids)), CampaignRow.status == "stopped"
                )
            )
            return {int(i) for i in rows.scalars()}

    async def complete_finished(self, now_ms: int) -> list[int]:
        """Mark running, filled campaigns with nothing left pending or in flight as completed."""
        open_rows = (
            select(OutboxRow.id)
            .where(OutboxRow.campaign_id == CampaignRow.id, OutboxRow.status.in_(("pending", "sending")))
            .exists()
        )
        async with self.engine.begin() as connection:
            done = (
                (
                    await connection.execute(
                        select(CampaignRow.id).where(
                            CampaignRow.status == "running", CampaignRow.filled == 1, ~open_rows
                        )
                    )
                )
                .scalars()
                .all()
            )
            if done:
                await connection.execute(
                    update(CampaignRow)
                    .where(CampaignRow.id.in_(done), CampaignRow.status == "running")
                    .values(status="completed", finished_ms=now_ms)
                )
        return [int(i) for i in done]

    async def account_caps(self, account_id: str, channel: str) -> list[FrequencyCap]:
        """The account's frequency caps for ``channel``: account setting ``frequency_caps``, a map of channel
        (or ``all``, counted across channels) to a list of ``{limit, window_s}``. Malformed entries are
        ignored."""
        async with self.engine.connect() as connection:
            settings = (
                await connection.execute(select(AccountRow.settings).where(AccountRow.id == account_id))
            ).scalar_one_or_none()
        caps = (settings or {}).get("frequency_caps", {})
        if not isinstance(caps, dict):
            return []
        found = []
        for key in (channel, ACROSS_CHANNELS):
            for cap in caps.get(key, []) if isinstance(caps.get(key), list) else []:
                if (
                    isinstance(cap, dict)
                    and isinstance(cap.get("limit"), int)
                    and isinstance(cap.get("window_s"), int | float)
                ):
                    scope = ACROSS_CHANNELS if key == ACROSS_CHANNELS else None
                    found.append(FrequencyCap(int(cap["limit"]), float(cap["window_s"]), scope))
        return found

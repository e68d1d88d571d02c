"""What users did with the messages they got: views, clicks, unsubscribes, each recorded once per user."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.messaging.models import InteractionRow


class Interactions:
    """The interactions table: one row per (campaign, user, kind), the first occurrence."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def record(self, *, campaign_id: int, variant: str, user_key: str, kind: str, ts_ms: int) -> bool:
        """Store a user's first interaction of ``kind``; False when it was already recorded."""
        statement = (
            self._insert(InteractionRow)
            .values(campaign_id=campaign_id, variant=variant, user_key=user_key, kind=kind, ts_ms=ts_ms)
            .on_conflict_do_nothing(index_elements=["campaign_id", "user_key", "kind"])
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount)

    async def counts(self, campaign_ids: Sequence[int]) -> dict[int, dict[str, dict[str, int]]]:
        """campaign → variant → kind (viewed, clicked, unsubscribed, converted) → unique users."""
        if not campaign_ids:
            return {}
        statement = (
            select(InteractionRow.campaign_id, InteractionRow.variant, InteractionRow.kind, func.count())
            .where(InteractionRow.campaign_id.in_(list(campaign_ids)))
            .group_by(InteractionRow.campaign_id, InteractionRow.variant, InteractionRow.kind)
        )
        counts: dict[int, dict[str, dict[str, int]]] = {}
        async with self.engine.connect() as connection:
            for campaign, variant, kind, count in (await connection.execute(statement)).all():
                counts.setdefault(int(campaign), {}).setdefault(str(variant), {})[str(kind)] = int(count)
        return counts

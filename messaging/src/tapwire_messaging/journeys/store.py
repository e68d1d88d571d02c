"""Journeys and their versions in the control store, with the campaigns that carry their entry and sends.

Each version of a journey gets campaigns of its own, created in the same transaction as the version: one per
send step (its outbox rows are that step's messages; ``audience`` names the journey, version and step), and, for
a trigger entry, an entry campaign whose trigger the evaluator watches (its timers enter users instead of
writing outbox rows; ``channel`` is ``journey``). The stored definition carries these campaigns' ids. A new
version stops the previous version's entry campaign, so new entries take the new version, and leaves its send
steps running for the users already inside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tapwire_core.control.messaging.journey_models import JourneyRow, JourneyVersionRow
from tapwire_core.control.messaging.models import CampaignRow
from tapwire_messaging.campaign_store import CONTINUOUS_FILL, insert_campaign
from tapwire_messaging.campaigns import TRIGGER_CUTOFF_S, CampaignSpec
from tapwire_messaging.journeys.definition import JourneyDefinition, SendStep


@dataclass(frozen=True, slots=True)
class Journey:
    id: int
    account_id: str
    name: str
    status: str
    version: int
    enrolled_version: int
    created_ms: int
    updated_ms: int


def _journey(row: Any) -> Journey:
    return Journey(**{f.name: getattr(row, f.name) for f in dataclasses.fields(Journey)})


class Journeys:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        account_id: str,
        name: str,
        definition: JourneyDefinition,
        steps: Mapping[str, CampaignSpec],
        *,
        now_ms: int,
    ) -> int:
        """Store a journey at version 1 with its campaigns. ``steps`` are the send steps' parsed campaigns."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                insert(JourneyRow)
                .values(
                    account_id=account_id,
                    name=name,
                    status="active",
                    version=0,
                    enrolled_version=0,
                    created_ms=now_ms,
                    updated_ms=now_ms,
                )
                .returning(JourneyRow.id)
            )
            journey_id = int(result.scalar_one())
            await self._add_version(connection, account_id, journey_id, name, 1, definition, steps, now_ms)
        return journey_id

    async def new_version(
        self,
        journey: Journey,
        definition: JourneyDefinition,
        steps: Mapping[str, CampaignSpec],
        *,
        now_ms: int,
    ) -> int:
        """Store the next version; new entries take it, users inside stay on theirs. Returns its number."""
        version = journey.version + 1
        async with self.engine.begin() as connection:
            current = await _stored_versions(connection, journey.id, journey.version)
            entry_ids = [int(d["entry"]["campaign_id"]) for d in current if d["entry"].get("campaign_id")]
            await _stop_campaigns(connection, entry_ids, now_ms)
            await self._add_version(
                connection, journey.account_id, journey.id, journey.name, version, definition, steps, now_ms
            )
        return version

    async def _add_version(  # noqa: PLR0917 (one private call site per public method)
        self,
        connection: AsyncConnection,
        account_id: str,
        journey_id: int,
        name: str,
        version: int,
        definition: JourneyDefinition,
        steps: Mapping[str, CampaignSpec],
        now_ms: int,
    ) -> None:
        stored = definition.to_stored()
        for step_name, spec in steps.items():
            where = {"journey": {"id": journey_id, "version": version, "step": step_name}}
            campaign = dataclasses.replace(
                spec,
                name=f"{name} · {step_name}"[:200],
                audience=where,
                scheduled_ms=now_ms,
                cutoff_ms=now_ms + TRIGGER_CUTOFF_S * 1000,
            )
            stored["steps"][step_name]["campaign_id"] = await insert_campaign(
                connection, account_id, campaign
            )
        trigger = definition.entry.trigger
        if trigger is not None:
            entry = await connection.execute(
                insert(CampaignRow)
                .values(
                    account_id=account_id,
                    name=f"{name} · entry"[:200],
                    kind="campaign",
                    channel="journey",
                    status="running",
                    filled=CONTINUOUS_FILL,
                    priority=0,
                    audience={
                        "trigger": trigger.to_stored(),
                        "journey": {"id": journey_id, "version": version},
                    },
                    variants=[],
                    rules={},
                    scheduled_ms=now_ms,
                    cutoff_ms=now_ms + TRIGGER_CUTOFF_S * 1000,
                    started_ms=now_ms,
                )
                .returning(CampaignRow.id)
            )
            stored["entry"]["campaign_id"] = int(entry.scalar_one())
        await connection.execute(
            insert(JourneyVersionRow).values(
                journey_id=journey_id, version=version, definition=stored, created_ms=now_ms
            )
        )
        await connection.execute(
            update(JourneyRow).where(JourneyRow.id == journey_id).values(version=version, updated_ms=now_ms)
        )

    async def get(self, journey_id: int, account_id: str | None = None) -> Journey | None:
        statement = select(JourneyRow).where(JourneyRow.id == journey_id)
        if account_id is not None:
            statement = statement.where(JourneyRow.account_id == account_id)
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return _journey(row) if row else None

    async def definition(self, journey_id: int, version: int) -> JourneyDefinition | None:
        """A version's definition as stored (send steps carrying their campaign ids)."""
        async with self.engine.connect() as connection:
            raw = (
                await connection.execute(
                    select(JourneyVersionRow.definition).where(
                        JourneyVersionRow.journey_id == journey_id, JourneyVersionRow.version == version
                    )
                )
            ).scalar_one_or_none()
        return None if raw is None else JourneyDefinition.from_stored(raw)

    async def stop(self, journey: Journey, *, now_ms: int) -> None:
        """Stop the journey: no more entries, and its campaigns stop (positions are exited by the runner)."""
        async with self.engine.begin() as connection:
            await connection.execute(
                update(JourneyRow)
                .where(JourneyRow.id == journey.id)
                .values(status="stopped", updated_ms=now_ms)
            )
            ids: list[int] = []
            for stored in await _stored_versions(connection, journey.id):
                ids += [
                    int(step["campaign_id"]) for step in stored["steps"].values() if step.get("campaign_id")
                ]
                if stored["entry"].get("campaign_id"):
                    ids.append(int(stored["entry"]["campaign_id"]))
            await _stop_campaigns(connection, ids, now_ms)

    async def due_enrolments(self) -> list[Journey]:
        """Active journeys whose current version enters a segment that was not enrolled yet."""
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(JourneyRow).where(
                        JourneyRow.status == "active", JourneyRow.enrolled_version < JourneyRow.version
                    )
                )
            ).all()
        return [_journey(row) for row in rows]

    async def mark_enrolled(self, journey_id: int, version: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(JourneyRow).where(JourneyRow.id == journey_id).values(enrolled_version=version)
            )


async def _stored_versions(
    connection: AsyncConnection, journey_id: int, version: int | None = None
) -> list[dict[str, Any]]:
    """The stored definitions of the journey's versions (of one, given ``version``)."""
    statement = select(JourneyVersionRow.definition).where(JourneyVersionRow.journey_id == journey_id)
    if version is not None:
        statement = statement.where(JourneyVersionRow.version == version)
    return [dict(raw) for raw in (await connection.execute(statement)).scalars()]


async def _stop_campaigns(connection: AsyncConnection, ids: list[int], now_ms: int) -> None:
    if ids:
        await connection.execute(
            update(CampaignRow)
            .where(CampaignRow.id.in_(ids), CampaignRow.status.in_(("scheduled", "running")))
            .values(status="stopped", finished_ms=now_ms)
        )


def send_steps(definition: JourneyDefinition) -> dict[str, SendStep]:
    return {name: step for name, step in definition.steps.items() if isinstance(step, SendStep)}

"""The running triggered campaigns, indexed by the event names they react to, as the evaluator reads them.

A triggered campaign is stored like any campaign, with ``{"trigger": …}`` as its audience, created ``running``
with its fill marked continuous (:data:`tapwire_messaging.campaign_store.CONTINUOUS_FILL`): the scheduler
neither fills nor completes it; it runs until stopped or until its cutoff.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.messaging.journey_models import JourneyRow, JourneyVersionRow
from tapwire_core.control.messaging.models import CampaignRow
from tapwire_messaging.campaign_store import CONTINUOUS_FILL
from tapwire_messaging.journeys.definition import Goal
from tapwire_messaging.triggers.spec import TriggerSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveTrigger:
    campaign_id: int
    account_id: str
    spec: TriggerSpec
    start_ms: int
    """Events received before the campaign's start do not trigger it (a new consumer group reads old ones)."""
    end_ms: int
    """The campaign's cutoff: events received after it do not trigger it."""


@dataclass(frozen=True, slots=True)
class LiveGoal:
    """A running journey version's goal: users who do its event leave the journey as converted."""

    journey_id: int
    version: int
    goal: Goal


@dataclass(frozen=True)
class LiveTriggers:
    """(account, event name) → the triggers it starts, → the triggers whose abandonment it cancels, and → the
    journey goals it reaches."""

    starting: Mapping[tuple[str, str], Sequence[LiveTrigger]] = field(default_factory=dict)
    cancelling: Mapping[tuple[str, str], Sequence[LiveTrigger]] = field(default_factory=dict)
    goals: Mapping[tuple[str, str], Sequence[LiveGoal]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(triggers) for triggers in self.starting.values())


async def load_live(engine: AsyncEngine) -> LiveTriggers:
    """Every running triggered campaign. A stored trigger that no longer validates is logged and left out."""
    statement = select(
        CampaignRow.id,
        CampaignRow.account_id,
        CampaignRow.audience,
        CampaignRow.scheduled_ms,
        CampaignRow.cutoff_ms,
    ).where(CampaignRow.status == "running", CampaignRow.filled == CONTINUOUS_FILL)
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    starting: dict[tuple[str, str], list[LiveTrigger]] = {}
    cancelling: dict[tuple[str, str], list[LiveTrigger]] = {}
    for campaign_id, account_id, audience, start_ms, end_ms in rows:
        if "trigger" not in audience:
            continue  # a journey's send step: its rows come from the journey runner
        try:
            spec = TriggerSpec.from_stored(audience["trigger"])
        except (TypeError, ValidationError):
            log.warning("a triggered campaign's stored trigger is not valid", extra={"campaign": campaign_id})
            continue
        trigger = LiveTrigger(int(campaign_id), str(account_id), spec, int(start_ms), int(end_ms))
        starting.setdefault((trigger.account_id, spec.event), []).append(trigger)
        if spec.not_done is not None:
            cancelling.setdefault((trigger.account_id, spec.not_done.event), []).append(trigger)
    return LiveTriggers(starting, cancelling, await _live_goals(engine))


async def _live_goals(engine: AsyncEngine) -> dict[tuple[str, str], list[LiveGoal]]:
    statement = (
        select(
            JourneyRow.account_id,
            JourneyVersionRow.journey_id,
            JourneyVersionRow.version,
            JourneyVersionRow.definition,
        )
        .join(JourneyRow, JourneyRow.id == JourneyVersionRow.journey_id)
        .where(JourneyRow.status == "active")
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    goals: dict[tuple[str, str], list[LiveGoal]] = {}
    for account_id, journey_id, version, definition in rows:
        raw = definition.get("goal") if isinstance(definition, dict) else None
        if raw is None:
            continue
        try:
            goal = Goal.model_validate(raw)
        except ValidationError:
            log.warning("a journey's stored goal is not valid", extra={"journey": journey_id})
            continue
        goals.setdefault((str(account_id), goal.event), []).append(
            LiveGoal(int(journey_id), int(version), goal)
        )
    return goals

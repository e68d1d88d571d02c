"""The journey runner: walks due positions through their steps, one durable step at a time.

Each step's outcome is written (:meth:`JourneyPositions.advance`) before the next step runs, so a runner killed
anywhere resumes, after the position's lease, at the step it was on. Re-running a step is harmless: a send's
outbox rows have keys of (step's campaign, user, entry), so the message leaves once; a wait's end is fixed
when it is written; a condition is asked again only if its answer was not yet written. A position whose user
objected, or whose journey was stopped, is exited before any further step.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.clock import Clock, epoch_ms
from tapwire_core.control.marketing_objections.operations import objected_keys
from tapwire_core.control.messaging import consent
from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.audience import AudienceError, AudienceResolver
from tapwire_messaging.campaign_store import Campaigns
from tapwire_messaging.delivery.filling import outbox_rows
from tapwire_messaging.delivery.polling import claim_due, lease_ms, poll_until_stopped
from tapwire_messaging.delivery.wakeup import Wakeup
from tapwire_messaging.journeys.conditions import Conditions, wait_over_ms
from tapwire_messaging.journeys.definition import (
    ConditionStep,
    ExitStep,
    JourneyDefinition,
    SendStep,
    SplitStep,
    Step,
    WaitStep,
)
from tapwire_messaging.journeys.positions import ClaimedPosition, HistoryEntry, JourneyPositions, NewPosition
from tapwire_messaging.journeys.store import Journey, Journeys
from tapwire_messaging.outbox import Outbox
from tapwire_messaging.recipients import RecipientProfile, load_profiles
from tapwire_messaging.rules import assign_variant
from tapwire_messaging.triggers.firing import firing_device

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    """What the walk of one claimed batch reads once: journeys, objections, profiles (with push tokens)."""

    journeys: dict[int, Journey | None] = field(default_factory=dict)
    objected: set[tuple[str, str]] = field(default_factory=set)
    profiles: dict[tuple[str, str], RecipientProfile] = field(default_factory=dict)


class JourneyRunner:
    def __init__(
        self,
        *,
        store: ControlStore,
        warehouse: Warehouse | None,
        resolver: AudienceResolver,
        settings: Settings,
        clock: Clock,
        wakeup: Wakeup,
        on_rows: Callable[[], None],
    ) -> None:
        engine = store.engine
        self._engine = engine
        self._warehouse = warehouse
        self._resolver = resolver
        self._settings = settings
        self._clock = clock
        self._wakeup = wakeup
        self._on_rows = on_rows
        self.journeys = Journeys(engine)
        self.positions = JourneyPositions(engine)
        self._campaigns = Campaigns(engine)
        self._outbox = Outbox(engine)
        self._conditions = Conditions(warehouse, store, cluster=settings.clickhouse_cluster is not None)
        self._definitions: dict[tuple[int, int], JourneyDefinition] = {}
        self.worker = f"journeys-{uuid.uuid4().hex[:12]}"

    async def run(self, stopping: asyncio.Event) -> None:
        """Enrol and walk until ``stopping`` is set; a failed round is logged (its positions come back after
        their lease)."""
        await poll_until_stopped(
            stopping,
            self._round,
            wakeup=self._wakeup,
            poll_s=self._settings.messaging_poll_s,
            log=log,
            failure="running journeys failed; retrying",
        )

    async def _round(self) -> int:
        return await self.enrol_due() + await self.walk_once()

    async def definition(self, journey_id: int, version: int) -> JourneyDefinition | None:
        key = (journey_id, version)
        if key not in self._definitions:
            found = await self.journeys.definition(journey_id, version)
            if found is None:
                return None
            self._definitions[key] = found
        return self._definitions[key]

    async def enrol_due(self) -> int:
        """Enter every member of a segment-entry journey's new version (once per version); the users entered."""
        entered = 0
        for journey in await self.journeys.due_enrolments():
            definition = await self.definition(journey.id, journey.version)
            segment = None if definition is None else definition.entry.segment()
            if definition is not None and segment is not None:
                now = epoch_ms(self._clock())
                try:
                    async for chunk in self._resolver.source(segment).chunks(journey.account_id):
                        await self.positions.enter(
                            [
                                NewPosition(
                                    journey.id,
                                    journey.version,
                                    journey.account_id,
                                    key,
                                    f"segment:{journey.version}",
                                    definition.start,
                                    now,
                                )
                                for key in chunk
                            ],
                            now_ms=now,
                        )
                        entered += len(chunk)
                except AudienceError as exc:
                    log.warning(
                        "a journey's entry segment cannot be evaluated",
                        extra={"journey": journey.id, "error": str(exc)},
                    )
            await self.journeys.mark_enrolled(journey.id, journey.version)
        return entered

    async def walk_once(self) -> int:
        """Claim one batch of due positions and walk each as far as it goes now; the number claimed. What the
        steps need about the batch's users (their journeys, objections, profiles) is read once per batch."""
        claimed = await claim_due(
            self.positions, worker=self.worker, now_ms=epoch_ms(self._clock()), settings=self._settings
        )
        if not claimed:
            return 0
        batch = _Batch()
        for journey_id in {p.journey_id for p in claimed}:
            batch.journeys[journey_id] = await self.journeys.get(journey_id)
        by_account: dict[str, list[str]] = {}
        for position in claimed:
            by_account.setdefault(position.account_id, []).append(position.user_key)
        for account_id, keys in by_account.items():
            async with AsyncSession(self._engine) as session:
                objected = await objected_keys(session, account_id=account_id, keys=keys)
            batch.objected |= {(account_id, key) for key in objected}
            if self._warehouse is not None:
                profiles = await load_profiles(
                    self._warehouse, account_id=account_id, user_keys=sorted(set(keys)), with_tokens=True
                )
                batch.profiles |= {(account_id, key): profile for key, profile in profiles.items()}
        lease = lease_ms(self._settings)
        renewed = time.monotonic()
        for index, position in enumerate(claimed):
            # A long batch (a slow warehouse) keeps its leases, so no other runner takes the positions it has yet
            # to walk.
            if time.monotonic() - renewed > self._settings.messaging_lease_s / 3:
                rest = [p.id for p in claimed[index:]]
                await self.positions.renew(rest, worker=self.worker, until_ms=epoch_ms(self._clock()) + lease)
                renewed = time.monotonic()
            await self._walk(position, batch)
        return len(claimed)

    async def _walk(self, position: ClaimedPosition, batch: _Batch) -> None:
        """Walk one claimed position from its step as far as it goes now: resume a finished wait, then take
        steps until one waits, ends the journey or finds the position no longer ours."""
        now = epoch_ms(self._clock())
        definition = await self.definition(position.journey_id, position.version)
        reason = _exit_reason(position, batch, definition)
        if reason is not None or definition is None:
            await self._end(position, position.step, status="exited", history=[], now=now, detail=reason)
            return
        profile = batch.profiles.get((position.account_id, position.user_key)) or RecipientProfile(
            position.user_key
        )
        name = await self._resume(position, definition, now)
        for _ in range(len(definition.steps) + 1):
            if name is None:
                return
            name = await self._take_step(position, name, definition.steps[name], profile, now)

    async def _resume(self, position: ClaimedPosition, definition: JourneyDefinition, now: int) -> str | None:
        """The step to take next: the position's own, or the one after the wait it has finished (None: the walk
        stops here, the journey completed with the wait or the position is no longer ours)."""
        if position.status != "waiting":
            return position.step
        wait = definition.steps[position.step]
        name = wait.next if isinstance(wait, WaitStep) else None
        waited = [HistoryEntry(position.step, "waited")]
        if name is None:
            await self._end(position, position.step, status="completed", history=waited, now=now)
            return None
        if not await self._advance(position, name, waited, now):
            return None
        return name

    async def _take_step(
        self, position: ClaimedPosition, name: str, step: Step, profile: RecipientProfile, now: int
    ) -> str | None:
        """Take step ``name`` and write its outcome; the step to take next, or None when the walk stops here (an
        exit, a wait begun, the journey completed, the position no longer ours)."""
        entered = HistoryEntry(name, "entered")
        if isinstance(step, ExitStep):
            done = [entered, HistoryEntry(name, "completed")]
            await self._end(position, name, status="completed", history=done, now=now)
            return None
        if isinstance(step, WaitStep):
            due = wait_over_ms(step, profile.timezone, now_ms=now)
            await self.positions.advance(
                position,
                worker=self.worker,
                step=name,
                status="waiting",
                due_ms=due,
                history=[entered],
                now_ms=now,
                release=True,
            )
            return None
        taken = await self._outcome(position, name, step, profile, now)
        if taken is None:
            return None
        outcome, following = taken
        if following is None:
            done = [entered, outcome, HistoryEntry(name, "completed")]
            await self._end(position, name, status="completed", history=done, now=now)
            return None
        if not await self._advance(position, following, [entered, outcome], now):
            return None
        return following

    async def _outcome(
        self,
        position: ClaimedPosition,
        name: str,
        step: SendStep | ConditionStep | SplitStep,
        profile: RecipientProfile,
        now: int,
    ) -> tuple[HistoryEntry, str | None] | None:
        """Do what a send, condition or split step does: its history entry and the step it leads to (None: the
        journey ends after it); None when a send finds the position no longer ours."""
        if isinstance(step, SendStep):
            if not await self.positions.still_ours(position, worker=self.worker):
                return None
            await self._send(position, step, profile)
            return HistoryEntry(name, "sent"), step.next
        if isinstance(step, ConditionStep):
            answer = await self._conditions.holds(
                step, account_id=position.account_id, profile=profile, now_ms=now
            )
            return HistoryEntry(name, "branched", "yes" if answer else "no"), step.yes if answer else step.no
        weights = [(str(i), b.weight) for i, b in enumerate(step.branches)]
        branch = int(assign_variant(position.journey_id, f"{position.user_key}\x1f{name}", weights))
        return HistoryEntry(name, "branched", f"branch {branch}"), step.branches[branch].next

    async def _advance(
        self, position: ClaimedPosition, step: str, history: list[HistoryEntry], now: int
    ) -> bool:
        return await self.positions.advance(
            position,
            worker=self.worker,
            step=step,
            status="active",
            due_ms=now,
            history=history,
            now_ms=now,
            release=False,
        )

    async def _end(
        self,
        position: ClaimedPosition,
        step: str,
        *,
        status: str,
        history: list[HistoryEntry],
        now: int,
        detail: str | None = None,
    ) -> None:
        await self.positions.advance(
            position,
            worker=self.worker,
            step=step,
            status=status,
            due_ms=now,
            history=history,
            now_ms=now,
            release=True,
            detail=detail,
        )

    async def _send(self, position: ClaimedPosition, step: SendStep, profile: RecipientProfile) -> None:
        """Write the step's outbox rows for the user (keyed by the step's campaign, user and entry)."""
        assert step.campaign_id is not None, "a stored send step carries its campaign"
        campaign = await self._campaigns.get(step.campaign_id)
        if campaign is None:
            return
        dead: set[str] = set()
        if campaign.channel == "push":
            dead = await consent.dead_tokens(
                self._engine, account_id=campaign.account_id, tokens=[t for t, _ in profile.tokens]
            )
        weights = [(str(v["name"]), float(v["weight"])) for v in campaign.variants]
        rows: list[dict[str, Any]] = []
        now = epoch_ms(self._clock())
        for row in outbox_rows(campaign, weights, profile, dead):
            context = dict(row["context"], occurrence=position.entry)
            rows.append(
                row
                | {"device": firing_device(position.entry, row["device"]), "context": context, "due_ms": now}
            )
        await self._outbox.add(rows)
        self._on_rows()


def _exit_reason(
    position: ClaimedPosition, batch: _Batch, definition: JourneyDefinition | None
) -> str | None:
    """Why the position leaves its journey before any further step (stopped, or the user objected), or None."""
    journey = batch.journeys.get(position.journey_id)
    if journey is None or journey.status != "active" or definition is None:
        return "journey stopped"
    if (position.account_id, position.user_key) in batch.objected:
        return "objected to marketing"
    return None

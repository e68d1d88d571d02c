"""The timer runner: claim due trigger timers, apply the campaign's frequency rule, write the outbox rows.

A fired timer of a journey's entry trigger enters the user into the journey instead. Any other fired timer
becomes the same outbox rows a segment campaign's fill writes for that user (variant, control
group, address, profile snapshot), with the triggering event's properties as the templates' ``Event``. A
campaign that may message a user more than once gives each firing its own outbox key (:func:`firing_device`),
so every firing is one message, and a firing written twice (a runner that died between writing the rows and
finishing the timer) is still one. The outbox rows are written before the timer is finished, so a crash in
between only makes the next claimant write nothing new.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.clock import Clock, epoch_ms
from tapwire_core.control.messaging import consent
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.campaign_store import Campaign, Campaigns
from tapwire_messaging.delivery.filling import outbox_rows
from tapwire_messaging.delivery.polling import claim_due, poll_until_stopped
from tapwire_messaging.delivery.wakeup import Wakeup
from tapwire_messaging.journeys.positions import JourneyPositions, NewPosition
from tapwire_messaging.journeys.store import Journeys
from tapwire_messaging.outbox import Outbox
from tapwire_messaging.recipients import RecipientProfile, load_profiles
from tapwire_messaging.triggers.spec import Once, PerWindow, TriggerSpec
from tapwire_messaging.triggers.timers import ClaimedTimer, TimerOutcome, TriggerTimers

log = logging.getLogger(__name__)


def firing_device(firing: str, device: str) -> str:
    """The outbox ``device`` of a firing's row: one key per (firing, device), 32 hex digits like a device id."""
    return hashlib.blake2b(f"{firing}\x1f{device}".encode(), digest_size=16).hexdigest()


class TimerRunner:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        warehouse: Warehouse | None,
        settings: Settings,
        clock: Clock,
        wakeup: Wakeup,
        on_rows: Callable[[], None],
        on_positions: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._on_positions = on_positions
        self._warehouse = warehouse
        self._settings = settings
        self._clock = clock
        self._wakeup = wakeup
        self._on_rows = on_rows
        self._campaigns = Campaigns(engine)
        self._outbox = Outbox(engine)
        self.timers = TriggerTimers(engine)
        self.worker = f"timers-{uuid.uuid4().hex[:12]}"
        self.fired = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Fire due timers until ``stopping`` is set, waiting a poll interval (or a wake-up) whenever none was
        due. A failed round is logged; its timers come back when their lease runs out."""
        await poll_until_stopped(
            stopping,
            self.fire_once,
            wakeup=self._wakeup,
            poll_s=self._settings.messaging_poll_s,
            log=log,
            failure="firing trigger timers failed; retrying",
        )

    async def fire_once(self) -> int:
        """Claim one batch of due timers and fire or skip each; the number claimed. Raises what the stores
        raise (the claimed timers are then retaken after their lease)."""
        now = epoch_ms(self._clock())
        claimed = await claim_due(self.timers, worker=self.worker, now_ms=now, settings=self._settings)
        if not claimed:
            return 0
        by_campaign: dict[int, list[ClaimedTimer]] = {}
        for timer in claimed:
            by_campaign.setdefault(timer.campaign_id, []).append(timer)
        outcomes: list[TimerOutcome] = []
        rows: list[dict[str, Any]] = []
        for campaign_id, timers in by_campaign.items():
            campaign = await self._campaigns.get(campaign_id)
            if campaign is None or campaign.status != "running" or "trigger" not in campaign.audience:
                outcomes += [TimerOutcome(t.id, "skipped", "campaign stopped") for t in timers]
                continue
            fired, refused = await self._admit(
                campaign, TriggerSpec.from_stored(campaign.audience["trigger"]), timers, now
            )
            outcomes += refused
            if "journey" in campaign.audience:
                await self._enter_journey(campaign, fired, now)
            else:
                rows += await self._rows(campaign, fired)
            outcomes += [TimerOutcome(t.id, "fired") for t in fired]
        await self._outbox.add(rows)
        await self.timers.finish(outcomes, worker=self.worker, now_ms=now)
        self.fired += sum(1 for o in outcomes if o.status == "fired")
        if rows:
            self._on_rows()
        return len(claimed)

    async def _admit(
        self, campaign: Campaign, spec: TriggerSpec, timers: Sequence[ClaimedTimer], now_ms: int
    ) -> tuple[list[ClaimedTimer], list[TimerOutcome]]:
        """The timers the frequency rule lets fire, and outcomes for those it refuses."""
        rule = spec.frequency
        if not isinstance(rule, Once | PerWindow):
            return list(timers), []
        since = 0 if isinstance(rule, Once) else now_ms - int(rule.window_s * 1000)
        limit = 1 if isinstance(rule, Once) else rule.limit
        counts = await self.timers.fired_since(campaign.id, (t.user_key for t in timers), since)
        fired: list[ClaimedTimer] = []
        refused: list[TimerOutcome] = []
        for timer in timers:
            if counts.get(timer.user_key, 0) >= limit:
                detail = "already sent once" if isinstance(rule, Once) else f"{limit} sent within the window"
                refused.append(TimerOutcome(timer.id, "skipped", detail))
                continue
            counts[timer.user_key] = counts.get(timer.user_key, 0) + 1
            fired.append(timer)
        return fired, refused

    async def _enter_journey(self, campaign: Campaign, timers: Sequence[ClaimedTimer], now_ms: int) -> None:
        """A journey's entry trigger fired: the users enter the journey's version at its first step (a firing
        entered twice is one position)."""
        target = campaign.audience["journey"]
        journey_id, version = int(target["id"]), int(target["version"])
        definition = await Journeys(self._engine).definition(journey_id, version)
        if definition is None or not timers:
            return
        await JourneyPositions(self._engine).enter(
            [
                NewPosition(
                    journey_id, version, campaign.account_id, t.user_key, t.firing, definition.start, t.due_ms
                )
                for t in timers
            ],
            now_ms=now_ms,
        )
        self._on_positions()

    async def _rows(self, campaign: Campaign, timers: Sequence[ClaimedTimer]) -> list[dict[str, Any]]:
        if not timers:
            return []
        keys = sorted({t.user_key for t in timers})
        profiles = await self._profiles(campaign, keys)
        dead: set[str] = set()
        if campaign.channel == "push":
            dead = await consent.dead_tokens(
                self._engine,
                account_id=campaign.account_id,
                tokens=[t for p in profiles.values() for t, _ in p.tokens],
            )
        weights = [(str(v["name"]), float(v["weight"])) for v in campaign.variants]
        repeats = TriggerSpec.from_stored(campaign.audience["trigger"]).repeats
        rows: list[dict[str, Any]] = []
        for timer in timers:
            for row in outbox_rows(campaign, weights, profiles[timer.user_key], dead):
                context = dict(row["context"], event=timer.event)
                if repeats:
                    row["device"] = firing_device(timer.firing, row["device"])
                    context["occurrence"] = timer.firing
                rows.append(row | {"context": context, "due_ms": timer.due_ms})
        return rows

    async def _profiles(self, campaign: Campaign, keys: Sequence[str]) -> dict[str, RecipientProfile]:
        if self._warehouse is None:
            return {key: RecipientProfile(key) for key in keys}
        return await load_profiles(
            self._warehouse,
            account_id=campaign.account_id,
            user_keys=keys,
            with_tokens=campaign.channel == "push",
        )

"""Claiming: lease due outbox rows, judge them under the audience rules, queue those cleared to send.

Rows are claimed only while the dispatch queue has room for at least half a claim batch, so a slow provider
slows claiming instead of holding leases on rows nobody is sending. Every claimed row is in flight from here
until the recorder writes its outcome: rules' verdicts go straight to the recorder, cleared rows to the
dispatch queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tapwire_core.clock import Clock, epoch_ms
from tapwire_core.settings import Settings
from tapwire_messaging.delivery.audience_rules import AudienceRules
from tapwire_messaging.delivery.campaign_views import CampaignView, CampaignViews
from tapwire_messaging.delivery.outcomes import Outcome, SenderStats
from tapwire_messaging.delivery.polling import claim_due, poll_until_stopped
from tapwire_messaging.delivery.wakeup import Wakeup
from tapwire_messaging.outbox import Claimed, Outbox, Verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A row cleared to send, with its campaign and when it was claimed (and checked against consent)."""

    row: Claimed
    view: CampaignView
    claimed_ms: int


class Claimer:
    def __init__(
        self,
        *,
        outbox: Outbox,
        views: CampaignViews,
        rules: AudienceRules,
        dispatch: asyncio.Queue[Dispatch],
        outcomes: asyncio.Queue[Outcome],
        in_flight: set[int],
        stats: SenderStats,
        settings: Settings,
        worker: str,
        clock: Clock,
        wakeup: Wakeup,
    ) -> None:
        self._outbox = outbox
        self._views = views
        self._rules = rules
        self._dispatch = dispatch
        self._outcomes = outcomes
        self._in_flight = in_flight
        self._stats = stats
        self._settings = settings
        self._worker = worker
        self._clock = clock
        self._wakeup = wakeup

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim until ``stopping`` is set, waiting a poll interval (or a wake-up) whenever nothing was due. A
        failed claim is logged and tried again."""
        await poll_until_stopped(
            stopping,
            self.claim_once,
            wakeup=self._wakeup,
            poll_s=self._settings.messaging_poll_s,
            log=log,
            failure="claiming outbox rows failed; retrying",
        )

    async def claim_once(self) -> int:
        """Claim one batch and route every row; the number of rows claimed (non-zero while the queue is too
        full to claim, so the loop does not sleep a whole poll). May block on a full dispatch queue."""
        room = self._dispatch.maxsize - self._dispatch.qsize()
        if room < self._settings.messaging_claim_batch // 2:
            await asyncio.sleep(0.01)
            return 1
        now = epoch_ms(self._clock())
        rows = await claim_due(
            self._outbox,
            worker=self._worker,
            now_ms=now,
            settings=self._settings,
            limit=min(room, self._settings.messaging_claim_batch),
        )
        if not rows:
            return 0
        claimed = len(rows)
        # A row of ours whose lease lapsed while its send was still running (a stalled loop) came back here;
        # its first send will be recorded, and sending it again would put a second copy on the wire.
        rows = [row for row in rows if row.id not in self._in_flight]
        self._stats.claimed += len(rows)
        self._in_flight.update(row.id for row in rows)
        by_campaign: dict[int, list[Claimed]] = {}
        for row in rows:
            by_campaign.setdefault(row.campaign_id, []).append(row)
        for campaign_id, batch in by_campaign.items():
            await self._route(campaign_id, batch, now)
        return claimed

    async def _route(self, campaign_id: int, batch: Sequence[Claimed], now_ms: int) -> None:
        view = await self._views.get(campaign_id)
        if view is None:
            for row in batch:
                self._outcomes.put_nowait(Outcome(Verdict(row.id, "stopped", "campaign is gone")))
            return
        verdicts = await self._rules.judge(view, batch, now_ms)
        for row in batch:
            verdict = verdicts.get(row.id)
            if verdict is None:
                await self._dispatch.put(Dispatch(row, view, now_ms))
                continue
            if verdict.status == "expired":
                self._stats.expired += 1
            elif verdict.status == "pending":
                self._stats.deferred += 1
            self._outcomes.put_nowait(Outcome(verdict))

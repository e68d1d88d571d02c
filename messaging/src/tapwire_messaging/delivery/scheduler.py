"""Scheduling: start campaigns whose time has come, fill their outbox, complete the finished ones.

Every tick also refreshes what the other pieces read between ticks: which cached campaigns were stopped (the
dispatchers drop their queued rows) and which opt-outs other processes wrote (the dispatchers' last check).
Several senders may tick at once: starting, filling and completing are idempotent.
"""

from __future__ import annotations

import asyncio
import logging

from tapwire_core.clock import Clock, epoch_ms
from tapwire_messaging.audience import AudienceError
from tapwire_messaging.campaign_store import Campaigns
from tapwire_messaging.delivery.campaign_views import CampaignViews
from tapwire_messaging.delivery.filling import OutboxFiller
from tapwire_messaging.delivery.opt_outs import RecentOptOuts
from tapwire_messaging.delivery.wakeup import Wakeup

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        *,
        campaigns: Campaigns,
        filler: OutboxFiller,
        views: CampaignViews,
        opt_outs: RecentOptOuts,
        clock: Clock,
        wakeup: Wakeup,
        poll_s: float,
    ) -> None:
        self._campaigns = campaigns
        self._filler = filler
        self._views = views
        self._opt_outs = opt_outs
        self._clock = clock
        self._wakeup = wakeup
        self._poll_s = poll_s

    async def run(self, stopping: asyncio.Event) -> None:
        """Tick every ``poll_s`` (sooner when woken) until ``stopping`` is set. A failed tick is logged and
        tried again at the next one."""
        while not stopping.is_set():
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign scheduling failed; retrying")
            await self._wakeup.wait(self._poll_s)

    async def tick(self) -> None:
        """Start and fill every due campaign (a campaign whose audience cannot be evaluated is stopped and
        logged), complete finished ones, refresh stopped campaigns and opt-outs. Raises what the stores raise."""
        now = epoch_ms(self._clock())
        for campaign in await self._campaigns.due_for_fill(now):
            await self._campaigns.start(campaign.id, now)
            try:
                size = await self._filler.fill(campaign)
            except AudienceError as exc:
                log.error(
                    "campaign audience cannot be evaluated",
                    extra={"campaign": campaign.id, "error": str(exc)},
                )
                await self._campaigns.stop(campaign.id, now)
                continue
            await self._campaigns.mark_filled(campaign.id, size)
            self._wakeup.set()
        await self._campaigns.complete_finished(epoch_ms(self._clock()))
        await self._views.refresh_stopped()
        await self._opt_outs.refresh()

"""Campaigns as the claimer and dispatchers need them: templates compiled, caps gathered, kept in memory."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from tapwire_messaging.campaign_rules import FrequencyCap
from tapwire_messaging.campaign_store import Campaign, Campaigns
from tapwire_messaging.templates import CompiledContent, TemplateError, compile_content

log = logging.getLogger(__name__)

# Campaigns whose compiled templates and rules stay in memory (each transactional send is a campaign).
MAX_CACHED_CAMPAIGNS = 1000


@dataclass(frozen=True, slots=True)
class CampaignView:
    campaign: Campaign
    content: dict[str, CompiledContent]
    """Compiled content per variant name."""
    caps: tuple[FrequencyCap, ...]
    """Every frequency cap the campaign's messages are subject to: its own and the account's. None for a
    campaign with ``respect_frequency_caps`` off, and for transactional sends."""

    def content_for(self, variant: str) -> CompiledContent:
        return self.content.get(variant) or next(iter(self.content.values()))


class CampaignViews:
    """The most recently used :data:`MAX_CACHED_CAMPAIGNS` campaign views, and which of them were stopped.

    A view is built on first use and then trusted: a campaign's content and rules do not change once created.
    Its status does, so :meth:`refresh_stopped` (called by the scheduler on every tick) re-reads it.
    """

    def __init__(self, campaigns: Campaigns) -> None:
        self._campaigns = campaigns
        self._views: OrderedDict[int, CampaignView] = OrderedDict()
        self._stopped: set[int] = set()

    async def get(self, campaign_id: int) -> CampaignView | None:
        """The campaign's view; None when the campaign is gone or its stored template no longer compiles
        (logged). Raises what the control store raises."""
        view = self._views.get(campaign_id)
        if view is not None:
            self._views.move_to_end(campaign_id)
            return view
        campaign = await self._campaigns.get(campaign_id)
        if campaign is None:
            return None
        try:
            content = {str(v["name"]): compile_content(v["content"]) for v in campaign.variants}
        except TemplateError:
            log.exception(
                "stored campaign has a template that no longer compiles", extra={"campaign": campaign_id}
            )
            return None
        caps: tuple[FrequencyCap, ...] = ()
        if campaign.kind == "campaign" and campaign.rules.respect_frequency_caps:
            account = await self._campaigns.account_caps(campaign.account_id, campaign.channel)
            caps = (*campaign.rules.caps, *account)
        view = self._views[campaign_id] = CampaignView(campaign, content, caps)
        while len(self._views) > MAX_CACHED_CAMPAIGNS:
            self._views.popitem(last=False)
        return view

    def stopped(self, campaign_id: int) -> bool:
        """Whether the campaign was stopped as of the last :meth:`refresh_stopped`."""
        return campaign_id in self._stopped

    async def refresh_stopped(self) -> None:
        if self._views:
            self._stopped = await self._campaigns.stopped_among(list(self._views))

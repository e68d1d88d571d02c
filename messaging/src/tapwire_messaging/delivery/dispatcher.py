"""Dispatching: send each row the claimer cleared, and turn the provider's answer into an outcome.

Before the provider call a row takes a send-window slot, which only the recorder gives back once the row's
outcome is written: that bounds how many messages a crash can leave sent but unrecorded. Right before sending,
the row is checked once more against what may have changed since it was claimed: its campaign stopped, or its
user opted out.
"""

from __future__ import annotations

import asyncio
import logging

from tapwire_core.clock import Clock, epoch_ms
from tapwire_messaging.campaign_store import Campaign
from tapwire_messaging.channels import Providers, SendResult
from tapwire_messaging.delivery.campaign_views import CampaignViews
from tapwire_messaging.delivery.claimer import Dispatch
from tapwire_messaging.delivery.messages import MessageBuilder, render
from tapwire_messaging.delivery.opt_outs import RecentOptOuts
from tapwire_messaging.delivery.outcomes import DeadToken, Outcome, SenderStats, retry_or_fail
from tapwire_messaging.email_feedback.notices import Notice, notice_id, scrubbed
from tapwire_messaging.feedback import Feedback
from tapwire_messaging.metrics import DELIVERIES
from tapwire_messaging.outbox import Claimed, Verdict
from tapwire_messaging.rules import TokenBucket
from tapwire_messaging.templates import TemplateError

log = logging.getLogger(__name__)


class Throttles:
    """One token bucket per (account, channel), at the rate the latest campaign asked for."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    async def acquire(self, campaign: Campaign) -> None:
        """Wait for the campaign's ``throttle_per_s`` to allow one more message; at once without a throttle."""
        rate = campaign.rules.throttle_per_s
        if not rate:
            return
        key = (campaign.account_id, campaign.channel)
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[key] = TokenBucket(rate)
        await bucket.acquire()


class Dispatcher:
    def __init__(
        self,
        *,
        providers: Providers,
        messages: MessageBuilder,
        views: CampaignViews,
        opt_outs: RecentOptOuts,
        stats: SenderStats,
        clock: Clock,
    ) -> None:
        self._providers = providers
        self._messages = messages
        self._views = views
        self._opt_outs = opt_outs
        self._stats = stats
        self._clock = clock
        self._throttles = Throttles()

    async def run(
        self, queue: asyncio.Queue[Dispatch], outcomes: asyncio.Queue[Outcome], window: asyncio.Semaphore
    ) -> None:
        """One send worker: take a row, a window slot, send, hand the outcome (holding the slot) to the
        recorder; forever, until cancelled. An unexpected error is logged and counts as a failed attempt."""
        while True:
            item = await queue.get()
            await window.acquire()
            try:
                outcome = await self.send(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("sending failed unexpectedly", extra={"row": item.row.id})
                verdict = retry_or_fail(item.row, f"internal error: {exc}", now_ms=self._now_ms())
                outcome = Outcome(verdict, holds_slot=True)
            outcomes.put_nowait(outcome)

    async def send(self, item: Dispatch) -> Outcome:
        """Send one row (waiting for its throttle first) unless a last check stops it. Never raises for a
        provider's answer; a template that fails on this user's data rejects the row."""
        row, campaign = item.row, item.view.campaign
        adapter = self._providers.get(campaign.channel)  # type: ignore[arg-type]
        if adapter is None:
            return _unsent(Verdict(row.id, "failed", f"no {campaign.channel} provider configured"))
        await self._throttles.acquire(campaign)
        if self._views.stopped(campaign.id):
            return _unsent(Verdict(row.id, "stopped", "campaign stopped"))
        if self._opt_outs.refuses(
            row,
            campaign.account_id,
            since_ms=item.claimed_ms - 1000,
            transactional=campaign.kind == "transactional",
        ):
            return _unsent(Verdict(row.id, "suppressed", "opted out after the message was queued"))
        try:
            rendered = render(row, item.view)
        except TemplateError as exc:
            return _unsent(Verdict(row.id, "rejected", str(exc)))
        result = await adapter.send(self._messages.build(row, campaign, rendered))
        return self._outcome(row, campaign, result)

    def _outcome(self, row: Claimed, campaign: Campaign, result: SendResult) -> Outcome:
        now = self._now_ms()
        # Anything but an accepted message is a failed attempt for the failure-rate alert.
        DELIVERIES.labels(row.channel, "sent" if result.outcome == "sent" else "failed").inc()
        if result.outcome == "sent":
            self._stats.sent += 1
            sent = Feedback(
                campaign.account_id,
                row.user_key,
                "Notification Sent",
                campaign.id,
                row.variant,
                row.channel,
                now,
                occurrence=_occurrence(row),
            )
            verdict = Verdict(row.id, "sent", result.detail, result.provider_id, sent_ms=now)
            return Outcome(verdict, sent, holds_slot=True)
        if result.outcome == "failed":
            verdict = retry_or_fail(row, result.detail, now_ms=now, retry_after_s=result.retry_after_s)
            # A soft bounce counts against the address once the outbox has given up on the message.
            bounce = _bounce(row, result) if verdict.status == "failed" else None
            return Outcome(verdict, holds_slot=True, bounce=bounce)
        if result.bounce is not None and row.channel == "email":
            # The feedback intake publishes Notification Bounced for it when recording the bounce.
            verdict = Verdict(row.id, result.outcome, result.detail)
            return Outcome(verdict, holds_slot=True, bounce=_bounce(row, result))
        dead = None
        if result.outcome == "unregistered" and row.channel == "push":
            dead = DeadToken(campaign.account_id, row.address, now)
        failed = Feedback(
            campaign.account_id,
            row.user_key,
            "Notification Failed",
            campaign.id,
            row.variant,
            row.channel,
            now,
            {"reason": result.outcome, "detail": result.detail[:200]},
            occurrence=_occurrence(row),
        )
        return Outcome(
            Verdict(row.id, result.outcome, result.detail), failed, holds_slot=True, dead_token=dead
        )

    def _now_ms(self) -> int:
        return epoch_ms(self._clock())


def _bounce(row: Claimed, result: SendResult) -> Notice | None:
    """The notice of an email the server refused (None for a refusal that says nothing of the recipient)."""
    judged = result.bounce
    if judged is None or row.channel != "email":
        return None
    return Notice(
        kind=judged.kind,
        source="smtp",
        notice_id=notice_id("smtp", row.id, row.attempts),
        row_id=row.id,
        recipient=row.address,
        category=judged.category,
        status=judged.status,
        detail=scrubbed(result.detail, row.address),
    )


def _occurrence(row: Claimed) -> str:
    # A triggered campaign that messages a user more than once names each firing, so each has its events.
    occurrence = row.context.get("occurrence")
    return occurrence if isinstance(occurrence, str) else ""


def _unsent(verdict: Verdict) -> Outcome:
    # The row took a window slot before these checks; it is given back with the outcome like any other.
    return Outcome(verdict, holds_slot=True)

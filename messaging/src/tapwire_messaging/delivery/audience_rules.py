"""The audience rules applied to claimed rows before they are sent, each a step with one job.

:class:`AudienceRules` passes one campaign's claimed rows through its steps in order. A step sees the rows no
earlier step decided ("open" rows) and returns verdicts for those it refuses or defers; the rows it lets through
go on to the next step, and rows no step decided are sent. The steps, in order: cutoff, erasure, consent, profile
opt-outs, dead push tokens, frequency caps and quiet hours. Transactional sends (receipts, password resets) skip
the profile opt-outs, caps and quiet hours, and their consent step honours only email suppressions and explicit
channel opt-outs, not objections or unsubscribes (docs/messaging.md, "Transactional and promotional messages").
Throttling is not a rule: it only spaces sends out (see the dispatcher).

Steps may query the control store or the warehouse and raise what those raise; the claimer retries the claim.
None of them sends anything, so a failure leaves the rows to come back when their lease runs out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.messaging import consent
from tapwire_core.control.privacy.suppression import erased_keys
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.delivery.campaign_views import CampaignView
from tapwire_messaging.outbox import Claimed, Outbox, Verdict
from tapwire_messaging.recipients import RecipientProfile, load_subscription_flags
from tapwire_messaging.rules import profile_opted_out

# Profile snapshots taken at fill time are trusted for this long; later claims re-read the MSG-* flags.
PROFILE_SNAPSHOT_FRESH_MS = 60_000

Verdicts = dict[int, Verdict]
"""Row id → the verdict that replaces sending it."""


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    """One campaign's rows of one claim, and when they were claimed."""

    view: CampaignView
    rows: Sequence[Claimed]
    now_ms: int


class AudienceRule(Protocol):
    async def decide(self, batch: ClaimedBatch, open_rows: Sequence[Claimed]) -> Verdicts:
        """Verdicts for the rows of ``open_rows`` this rule stops or defers; absent rows pass."""
        ...


class CutoffRule:
    """Past the campaign's cutoff nothing is sent: every row ``expired``."""

    async def decide(self, batch: ClaimedBatch, open_rows: Sequence[Claimed]) -> Verdicts:
        if batch.now_ms <= batch.view.campaign.cutoff_ms:
            return {}
        return {row.id: Verdict(row.id, "expired", "past the campaign's cutoff") for row in open_rows}


@dataclass(frozen=True)
class ErasureRule:
    """Rows to a user or an address erased by a privacy request (on the privacy suppression list, which the
    privacy worker fills before it erases anything): ``suppressed``, whatever the message. Rows the worker
    found pending are suppressed by it; this catches sends created since, e.g. to an address given by value."""

    engine: AsyncEngine

    async def decide(self, batch: ClaimedBatch, open_rows: Sequence[Claimed]) -> Verdicts:
        keys = {row.id: _subject_keys(row) for row in open_rows}
        async with AsyncSession(self.engine) as session, session.begin():
            erased = await erased_keys(
                session,
                account_id=batch.view.campaign.account_id,
                keys={key for row_keys in keys.values() for key in row_keys},
                now=datetime.fromtimestamp(batch.now_ms / 1000, UTC),
            )
        if not erased:
            return {}
        return {
            row.id: Verdict(row.id, "suppressed", "erased by a privacy request")
            for row in open_rows
            if erased.intersection(keys[row.id])
        }


def _subject_keys(row: Claimed) -> list[str]:
    """The privacy subject keys of a row's recipient: the user key and the address as an ``e:``/``p:`` key."""
    keys = [row.user_key]
    if row.channel == "email" and row.address:
        keys += [f"e:{row.address.strip()}", f"e:{row.address.strip().lower()}"]
    elif row.channel == "sms" and row.address:
        keys.append(f"p:{row.address.strip()}")
    return keys


@dataclass(frozen=True)
class ConsentRule:
    """Rows whose user or address may not get this message by the control store: ``suppressed``. A promotional
    message stops at an unsubscribe or objection; every message at an email suppression (bounce, complaint) or
    an explicit opt-out of the channel."""

    engine: AsyncEngine

    async def decide(self, batch: ClaimedBatch, open_rows: Sequence[Claimed]) -> Verdicts:
        refused = await consent.blocked(
            self.engine,
            transactional=batch.view.campaign.kind == "transactional",
            account_id=batch.view.campaign.account_id,
            recipients=[
                consent.Recipient(
                    row.user_key,
                    row.channel,
                    email=row.address if row.channel == "email" else None,
                    phone=row.address if row.channel == "sms" else None,
                )
                for row in open_rows
            ],
        )
        return {
            row.id: Verdict(row.id, "suppressed", "unsubscribed or objected")
            for index, row in enumerate(open_rows)
            if index in refused
        }


@dataclass(frozen=True)
class ProfileOptOutRule:
    """Rows whose profile's ``MSG-*`` flags opt out of the channel: ``suppressed`` (promotional messages only:
    the flags are CleverTap's subscription and do-not-disturb preferences). The flags come from the
    profile snapshot taken at fill time; once that is older than :data:`PROFILE_SNAPSHOT_FRESH_MS`, they are
    re-read from the warehouse, so an opt-out uploaded since counts too."""

    warehouse: Warehouse | None

    async def decide(self, batch: ClaimedBatch, open_rows: Sequence[Claimed]) -> Verdicts:
        campaign = batch.view.campaign
        fresh: Mapping[str, Mapping[str, Any]] = {}
        snapshot_age_ms = batch.now_ms - (campaign.started_ms or campaign.scheduled_ms)
        if self.warehouse is not None and snapshot_age_ms > PROFILE_SNAPSHOT_FRESH_MS:
            fresh = await load_subscription_flags(
                self.warehouse, account_id=campaign.account_id, user_keys=[r.user_key for r in open_rows]
            )
        return {
            row.id: Verdict(row.id, "suppressed", "unsubscribed or objected")
            for row in open_rows
            if profile_opted_out(row.context.get("profile", {}) | fresh.get(row.user_key, {}), row.channel)
        }


@dataclass(frozen=True)
class DeadTokenRule:
    """Push rows to a token a provider reported gone since the campaign was filled: ``unregistered``, without
    sending. The user's other devices are unaffected."""

    engine: AsyncEngine

    async def decide(self, batch: ClaimedBatch, open_rows: Sequence[Claimed]) -> Verdicts:
        if batch.view.campaign.channel != "push":
            return {}
        dead = await consent.dead_tokens(
            self.engine, account_id=batch.view.campaign.account_id, tokens=[r.address for r in open_rows]
        )
        return {
            row.id: Verdict(row.id, "unregistered", "token reported unregistered earlier")
            for row in open_rows
            if row.address in dead
        }


@dataclass(frozen=True)
class FrequencyCapRule:
    """Rows to users who already got ``limit`` other campaigns' messages within a cap's window (sent, or in
    flight elsewhere): ``capped``. A cap counts the campaign's channel, or every channel for a cap across
    channels. Caps apply one after the other to the rows still open."""

    outbox: Outbox

    async def decide(self, batch: ClaimedBatch, open_rows: Sequence[Claimed]) -> Verdicts:
        campaign = batch.view.campaign
        verdicts: Verdicts = {}
        for cap in batch.view.caps:
            open_rows = [row for row in open_rows if row.id not in verdicts]
            counts = await self.outbox.recent_sends(
                account_id=campaign.account_id,
                channel=None if cap.across_channels else campaign.channel,
                user_keys=[row.user_key for row in open_rows],
                since_ms=batch.now_ms - int(cap.window_s * 1000),
                campaign_id=campaign.id,
                # The batch's own rows are in flight (``sending``) and must not count against their users.
                exclude=[row.id for row in batch.rows],
            )
            for row in open_rows:
                if counts.get(row.user_key, 0) >= cap.limit:
                    across = " across channels" if cap.across_channels else ""
                    verdicts[row.id] = Verdict(row.id, "capped", f"{cap.limit} per {cap.window_s:g}s{across}")
        return verdicts


class QuietHoursRule:
    """Rows whose user is inside the campaign's quiet hours (in the user's time zone): back to ``pending``
    until the window ends, or ``suppressed`` when the campaign drops them."""

    async def decide(self, batch: ClaimedBatch, open_rows: Sequence[Claimed]) -> Verdicts:
        quiet = batch.view.campaign.rules.quiet_hours
        if quiet is None:
            return {}
        verdicts: Verdicts = {}
        for row in open_rows:
            profile = RecipientProfile(row.user_key, row.context.get("profile", {}))
            resume = quiet.resume_at(batch.now_ms / 1000, profile.timezone)
            if resume is None:
                continue
            if quiet.drop:
                verdicts[row.id] = Verdict(row.id, "suppressed", "quiet hours")
            else:
                verdicts[row.id] = Verdict(row.id, "pending", "quiet hours", due_ms=int(resume * 1000))
        return verdicts


class AudienceRules:
    """The steps in order: every one for promotional messages, those that also bind transactional ones for
    transactional sends."""

    def __init__(self, *, engine: AsyncEngine, warehouse: Warehouse | None, outbox: Outbox) -> None:
        cutoff, erasure, consent_rule = CutoffRule(), ErasureRule(engine), ConsentRule(engine)
        dead_tokens = DeadTokenRule(engine)
        self._promotional: tuple[AudienceRule, ...] = (
            cutoff,
            erasure,
            consent_rule,
            ProfileOptOutRule(warehouse),
            dead_tokens,
            FrequencyCapRule(outbox),
            QuietHoursRule(),
        )
        self._transactional: tuple[AudienceRule, ...] = (cutoff, erasure, consent_rule, dead_tokens)

    async def judge(self, view: CampaignView, rows: Sequence[Claimed], now_ms: int) -> Verdicts:
        """The verdicts that replace sending; rows without one are to be sent now."""
        steps = self._transactional if view.campaign.kind == "transactional" else self._promotional
        batch = ClaimedBatch(view, rows, now_ms)
        verdicts: Verdicts = {}
        open_rows: Sequence[Claimed] = rows
        for step in steps:
            if not open_rows:
                break
            decided = await step.decide(batch, open_rows)
            if decided:
                verdicts.update(decided)
                open_rows = [row for row in open_rows if row.id not in decided]
        return verdicts

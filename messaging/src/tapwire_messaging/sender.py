"""The delivery loop: fill the outbox from audiences, claim due rows, apply the send-time rules, send, record.

Tasks (all in one asyncio loop): a scheduler that starts due campaigns, fills their outbox in chunks and marks
finished ones completed; a claimer that leases due rows and decides each one's fate under the audience rules;
``senders`` workers that render and hand messages to providers; a recorder that writes outcomes in batches
and publishes feedback events; a lease keeper that extends leases of rows still in flight.

Crash safety: a row is ``sending`` under a lease before its provider call and gets its outcome after. A crash
in between leaves it ``sending``; when the lease expires it is claimed again and re-sent with the same
idempotency key (Message-ID, Idempotency-Key, apns-id), which providers use to drop the repeat. Nothing is
lost, and a row already recorded is never sent again. The send window bounds that in-between state: at most
``Settings.resolved_send_window()`` messages are with providers (or on their way) without a recorded outcome,
so a crash makes providers receive at most that many messages a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.clock import Clock, epoch_ms, system_clock
from tapwire_core.control.messaging import consent
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.audience import AudienceError, AudienceResolver
from tapwire_messaging.campaign_rules import FrequencyCap
from tapwire_messaging.campaign_store import Campaign, Campaigns
from tapwire_messaging.channels import OutboundMessage, Providers, SendResult
from tapwire_messaging.feedback import Feedback, FeedbackPublisher
from tapwire_messaging.links import Links
from tapwire_messaging.metrics import DELIVERIES
from tapwire_messaging.outbox import Claimed, Outbox, Verdict
from tapwire_messaging.recipients import (
    RecipientProfile,
    device_id,
    load_profiles,
    load_subscription_flags,
    push_targets,
)
from tapwire_messaging.rules import (
    QuietHours,
    TokenBucket,
    assign_variant,
    in_control_group,
    profile_opted_out,
)
from tapwire_messaging.signing import LinkTarget
from tapwire_messaging.templates import CompiledContent, TemplateError, compile_content

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Campaigns whose compiled templates and rules stay in memory (each transactional send is a campaign).
MAX_CACHED_CAMPAIGNS = 1000
# Profile snapshots taken at fill time are trusted for this long; later claims re-read the MSG-* flags.
PROFILE_SNAPSHOT_FRESH_MS = 60_000
# How long an opt-out is remembered in memory for rows claimed before it (claims older than this are re-checked
# against the database when they are claimed again after their lease).
OPT_OUT_MEMORY_MS = 15 * 60 * 1000


def idempotency_key(campaign_id: int, variant: str, user_key: str, channel: str, device: str = "") -> str:
    """The provider idempotency key of an outbox row, from its key. ``device`` (set only for a push to each of a
    user's devices) joins the key when present, so keys of rows without one are what they always were."""
    raw = f"{campaign_id}\x1f{variant}\x1f{user_key}\x1f{channel}"
    if device:
        raw += f"\x1f{device}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


@dataclass
class _CampaignView:
    campaign: Campaign
    content: dict[str, CompiledContent]
    quiet: QuietHours | None
    caps: list[FrequencyCap]


@dataclass
class SenderStats:
    claimed: int = 0
    sent: int = 0
    expired: int = 0
    deferred: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class Sender:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        providers: Providers,
        publisher: FeedbackPublisher,
        resolver: AudienceResolver,
        warehouse: Warehouse | None,
        links: Links,
        settings: Settings,
        clock: Clock = system_clock,
        worker_id: str | None = None,
    ) -> None:
        self.outbox = Outbox(engine)
        self.campaigns = Campaigns(engine)
        self.engine = engine
        self.providers = providers
        self.publisher = publisher
        self.resolver = resolver
        self.warehouse = warehouse
        self.links = links
        self.settings = settings
        self.clock = clock
        self.worker = worker_id or f"sender-{uuid.uuid4().hex[:12]}"
        self.stats = SenderStats()
        self._queue: asyncio.Queue[tuple[Claimed, _CampaignView, int]] = asyncio.Queue(
            maxsize=max(2 * settings.messaging_claim_batch, settings.messaging_senders)
        )
        # (verdict, feedback, whether the row holds a send-window slot until its verdict is written).
        self._results: asyncio.Queue[tuple[Verdict, Feedback | None, bool]] = asyncio.Queue()
        self.send_window = settings.resolved_send_window()
        self._window = asyncio.Semaphore(self.send_window)
        self._inflight: set[int] = set()
        self._dead_tokens: list[tuple[str, str, int]] = []
        self._views: OrderedDict[int, _CampaignView] = OrderedDict()
        self._stopped: set[int] = set()
        # Opt-outs seen since start: (account, subject kind, subject) -> {channel or "all": updated ms}.
        self._opt_outs: dict[tuple[str, str, str], dict[str, int]] = {}
        self._opt_outs_seen_ms = self.now_ms()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    def now_ms(self) -> int:
        return epoch_ms(self.clock())

    def wake(self) -> None:
        """Look for due work now instead of at the next poll (after a campaign was created)."""
        self._wake.set()

    # Lifecycle.

    def start(self) -> None:
        loops = [self._schedule_loop(), self._claim_loop(), self._record_loop(), self._lease_loop()]
        loops += [self._send_loop() for _ in range(self.settings.messaging_senders)]
        self._tasks = [asyncio.create_task(loop, name=f"messaging-{i}") for i, loop in enumerate(loops)]

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming, let in-flight sends finish and record them, then cancel what is left."""
        self._stopping.set()
        self._wake.set()
        # Hand queued, unsent rows back at once rather than leaving them to their lease.
        now = self.now_ms()
        while not self._queue.empty():
            row, _, _ = self._queue.get_nowait()
            self._results.put_nowait((Verdict(row.id, "pending", "sender stopped", due_ms=now), None, False))
        deadline = time.monotonic() + timeout_s
        while (self._inflight or not self._results.empty()) and time.monotonic() < deadline:  # noqa: ASYNC110 (two conditions, no single event)
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    # Scheduling and filling.

    async def _schedule_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.schedule_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign scheduling failed; retrying")
            await self._sleep(self.settings.messaging_poll_s)

    async def schedule_once(self) -> None:
        now = self.now_ms()
        for campaign in await self.campaigns.due_for_fill(now):
            await self.campaigns.start(campaign.id, now)
            try:
                size = await self.fill(campaign)
            except AudienceError as exc:
                log.error(
                    "campaign audience cannot be evaluated",
                    extra={"campaign": campaign.id, "error": str(exc)},
                )
                await self.campaigns.stop(campaign.id, now)
                continue
            await self.campaigns.mark_filled(campaign.id, size)
            self._wake.set()
        await self.campaigns.complete_finished(self.now_ms())
        if self._views:
            self._stopped = await self.campaigns.stopped_among(list(self._views))
        await self._refresh_opt_outs()

    async def _refresh_opt_outs(self) -> None:
        """Catch opt-outs written by any process since the last look, for rows claimed before them."""
        since = self._opt_outs_seen_ms - 5_000  # overlap: writers' clocks and commit order may lag a little
        changes = await consent.opt_outs_since(self.engine, since_ms=since)
        for change in changes:
            self.note_opt_out(
                change.account_id, change.kind, change.subject, change.channel, change.updated_ms
            )
        self._opt_outs_seen_ms = max([self._opt_outs_seen_ms, *(c.updated_ms for c in changes)])
        horizon = self.now_ms() - OPT_OUT_MEMORY_MS
        for key in [k for k, channels in self._opt_outs.items() if max(channels.values()) < horizon]:
            del self._opt_outs[key]

    def note_opt_out(self, account_id: str, kind: str, subject: str, channel: str, updated_ms: int) -> None:
        """Refuse sends to ``subject`` on ``channel`` (or every channel for ``all``) from now on, including
        messages already claimed. Called by the unsubscribe endpoint in this process and by the poll above."""
        key = (account_id, kind, consent.normalise_subject(kind, subject))  # type: ignore[arg-type]
        self._opt_outs.setdefault(key, {})[channel] = updated_ms

    def refuses(self, row: Claimed, account_id: str, *, since_ms: int) -> bool:
        """Whether an opt-out written at or after ``since_ms`` (just before ``row`` was claimed and checked
        against the database) forbids sending it now."""
        if not self._opt_outs:
            return False
        subjects = [("user", row.user_key)]
        if row.channel == "email":
            subjects.append(("email", row.address.strip().lower()))
        elif row.channel == "sms":
            subjects.append(("phone", row.address.strip()))
        elif row.channel == "push":
            # A token a provider disowned since (for this user's or any other campaign's message).
            subjects.append(("token", row.address.strip()))
        for kind, subject in subjects:
            channels = self._opt_outs.get((account_id, kind, subject))
            if not channels:
                continue
            latest = max(channels.get(row.channel, -1), channels.get(consent.ALL_CHANNELS, -1))
            if latest >= since_ms:
                return True
        return False

    async def fill(self, campaign: Campaign) -> int:
        """Write one outbox row per audience member (per live device token for a push with
        ``send_to_all_devices``): variant and control group assigned, address resolved. Ends early, leaving no
        pending row, when the campaign is stopped meanwhile."""
        source = self.resolver.source(campaign.audience)
        weights = [(str(v["name"]), float(v["weight"])) for v in campaign.variants]
        control = campaign.rules.control_group_percent
        total = 0
        async for chunk in source.chunks(campaign.account_id):
            if self.warehouse is not None:
                profiles = await load_profiles(
                    self.warehouse,
                    account_id=campaign.account_id,
                    user_keys=chunk,
                    with_tokens=campaign.channel == "push",
                )
            else:
                profiles = {key: RecipientProfile(key) for key in chunk}
            dead: set[str] = set()
            if campaign.channel == "push":
                dead = await consent.dead_tokens(
                    self.engine,
                    account_id=campaign.account_id,
                    tokens=[t for p in profiles.values() for t, _ in p.tokens],
                )
            rows = []
            for key in chunk:
                profile = profiles[key]
                row = {
                    "campaign_id": campaign.id,
                    "account_id": campaign.account_id,
                    "variant": assign_variant(campaign.id, key, weights),
                    "user_key": key,
                    "channel": campaign.channel,
                    "device": "",
                    "platform": None,
                    "context": {"profile": profile.profile},
                    "priority": campaign.priority,
                    "due_ms": campaign.scheduled_ms,
                    "attempts": 0,
                }
                targets = self._targets(campaign, profile, dead)
                if in_control_group(campaign.id, key, control):
                    rows.append(row | {"address": targets[0][0] if targets else "", "status": "control"})
                elif not targets:
                    rows.append(row | {"address": "", "status": "no_address"})
                else:
                    rows += [
                        row
                        | {"address": address, "platform": platform, "device": device, "status": "pending"}
                        for address, platform, device in targets
                    ]
            await self.outbox.add(rows)
            total += len(chunk)
            self._wake.set()
            if await self.campaigns.stopped_among([campaign.id]):
                # Stopped while filling: rows added since the stop must not wait as pending forever.
                await self.campaigns.stop(campaign.id, self.now_ms())
                break
        return total

    @staticmethod
    def _targets(
        campaign: Campaign, profile: RecipientProfile, dead: set[str]
    ) -> list[tuple[str, str | None, str]]:
        """(address, push platform, device) for each message the user gets; empty without an address. Only a
        push to all devices names the device: any other message is one per user, whatever the address."""
        if campaign.channel == "push":
            all_devices = bool(campaign.rules.send_to_all_devices)
            tokens = push_targets(profile, dead=dead, devices=campaign.rules.devices, all_devices=all_devices)
            return [(token, kind, device_id(token) if all_devices else "") for token, kind in tokens]
        if campaign.channel == "email":
            address = profile.email
        elif campaign.channel == "sms":
            address = profile.phone
        else:
            assert campaign.rules.webhook is not None, "a webhook campaign has a webhook target"
            address = campaign.rules.webhook.url
        return [(address, None, "")] if address else []

    # Claiming and the send-time rules.

    async def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                claimed = await self.claim_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming outbox rows failed; retrying")
                claimed = 0
            if claimed == 0:
                await self._sleep(self.settings.messaging_poll_s)

    async def claim_once(self) -> int:
        room = self._queue.maxsize - self._queue.qsize()
        if room < self.settings.messaging_claim_batch // 2:
            await asyncio.sleep(0.01)
            return 1
        now = self.now_ms()
        rows = await self.outbox.claim(
            worker=self.worker,
            now_ms=now,
            lease_ms=int(self.settings.messaging_lease_s * 1000),
            limit=min(room, self.settings.messaging_claim_batch),
        )
        if not rows:
            return 0
        claimed = len(rows)
        # A row of ours whose lease lapsed while its send was still running (a stalled loop) came back here;
        # its first send will be recorded, and sending it again would put a second copy on the wire.
        rows = [row for row in rows if row.id not in self._inflight]
        self.stats.claimed += len(rows)
        self._inflight.update(row.id for row in rows)
        by_campaign: dict[int, list[Claimed]] = {}
        for row in rows:
            by_campaign.setdefault(row.campaign_id, []).append(row)
        for campaign_id, batch in by_campaign.items():
            view = await self._view(campaign_id)
            if view is None:
                for row in batch:
                    self._results.put_nowait((Verdict(row.id, "stopped", "campaign is gone"), None, False))
                continue
            for row, verdict in zip(batch, await self._judge(view, batch, now), strict=True):
                if verdict is None:
                    await self._queue.put((row, view, now))
                else:
                    self._results.put_nowait((verdict, None, False))
        return claimed

    async def _view(self, campaign_id: int) -> _CampaignView | None:
        view = self._views.get(campaign_id)
        if view is not None:
            self._views.move_to_end(campaign_id)
        else:
            campaign = await self.campaigns.get(campaign_id)
            if campaign is None:
                return None
            try:
                content = {str(v["name"]): compile_content(v["content"]) for v in campaign.variants}
            except TemplateError:
                log.exception(
                    "stored campaign has a template that no longer compiles", extra={"campaign": campaign_id}
                )
                return None
            caps: list[FrequencyCap] = []
            if campaign.kind == "campaign" and campaign.rules.respect_frequency_caps:
                caps = list(campaign.rules.caps)
                caps += await self.campaigns.account_caps(campaign.account_id, campaign.channel)
            view = _CampaignView(campaign, content, campaign.rules.quiet_hours, caps)
            self._views[campaign_id] = view
            while len(self._views) > MAX_CACHED_CAMPAIGNS:
                self._views.popitem(last=False)
        return view

    async def _judge(self, view: _CampaignView, rows: Sequence[Claimed], now_ms: int) -> list[Verdict | None]:
        """None for rows to send now; otherwise the verdict that replaces the send."""
        campaign = view.campaign
        verdicts: list[Verdict | None] = [None] * len(rows)
        if now_ms > campaign.cutoff_ms:
            self.stats.expired += len(rows)
            return [Verdict(r.id, "expired", "past the campaign's cutoff") for r in rows]
        refused = await consent.blocked(
            self.engine,
            account_id=campaign.account_id,
            recipients=[
                consent.Recipient(
                    r.user_key,
                    r.channel,
                    email=r.address if r.channel == "email" else None,
                    phone=r.address if r.channel == "sms" else None,
                )
                for r in rows
            ],
        )
        fresh_flags: dict[str, dict[str, Any]] = {}
        snapshot_age_ms = now_ms - (campaign.started_ms or campaign.scheduled_ms)
        if self.warehouse is not None and snapshot_age_ms > PROFILE_SNAPSHOT_FRESH_MS:
            # Profiles were read when the campaign started; MSG-* opt-outs uploaded since must count too.
            fresh_flags = await load_subscription_flags(
                self.warehouse, account_id=campaign.account_id, user_keys=[r.user_key for r in rows]
            )
        for index, row in enumerate(rows):
            profile = row.context.get("profile", {}) | fresh_flags.get(row.user_key, {})
            if index in refused or profile_opted_out(profile, row.channel):
                verdicts[index] = Verdict(row.id, "suppressed", "unsubscribed or objected")
        if campaign.channel == "push":
            # Tokens reported gone after this campaign was filled; the user's other devices are unaffected.
            dead = await consent.dead_tokens(
                self.engine, account_id=campaign.account_id, tokens=[r.address for r in rows]
            )
            for index, row in enumerate(rows):
                if verdicts[index] is None and row.address in dead:
                    verdicts[index] = Verdict(row.id, "unregistered", "token reported unregistered earlier")
        if campaign.kind == "transactional":
            return verdicts
        for cap in view.caps:
            open_rows = [r for i, r in enumerate(rows) if verdicts[i] is None]
            counts = await self.outbox.recent_sends(
                account_id=campaign.account_id,
                channel=campaign.channel,
                user_keys=[r.user_key for r in open_rows],
                since_ms=now_ms - int(cap.window_s * 1000),
                campaign_id=campaign.id,
                exclude=[r.id for r in rows],
            )
            for index, row in enumerate(rows):
                if verdicts[index] is None and counts.get(row.user_key, 0) >= cap.limit:
                    verdicts[index] = Verdict(row.id, "capped", f"{cap.limit} per {cap.window_s:g}s")
        if view.quiet is not None:
            drop = view.quiet.drop
            for index, row in enumerate(rows):
                if verdicts[index] is not None:
                    continue
                profile = RecipientProfile(row.user_key, row.context.get("profile", {}))
                resume = view.quiet.resume_at(now_ms / 1000, profile.timezone)
                if resume is None:
                    continue
                if drop:
                    verdicts[index] = Verdict(row.id, "suppressed", "quiet hours")
                else:
                    self.stats.deferred += 1
                    verdicts[index] = Verdict(row.id, "pending", "quiet hours", due_ms=int(resume * 1000))
        return verdicts

    # Sending.

    async def _send_loop(self) -> None:
        while True:
            row, view, claimed_ms = await self._queue.get()
            # The slot is held until the recorder has written this row's outcome (see _record).
            await self._window.acquire()
            try:
                verdict, feedback = await self.send_one(row, view, claimed_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("sending failed unexpectedly", extra={"row": row.id})
                verdict, feedback = self._retry_or_fail(row, f"internal error: {exc}"), None
            self._results.put_nowait((verdict, feedback, True))

    async def send_one(
        self, row: Claimed, view: _CampaignView, claimed_ms: int
    ) -> tuple[Verdict, Feedback | None]:
        campaign = view.campaign
        adapter = self.providers.get(campaign.channel)  # type: ignore[arg-type]
        if adapter is None:
            return Verdict(row.id, "failed", f"no {campaign.channel} provider configured"), None
        throttle = campaign.rules.throttle_per_s
        if throttle:
            bucket_key = (campaign.account_id, campaign.channel)
            bucket = self._buckets.get(bucket_key)
            if bucket is None or bucket.rate != throttle:
                bucket = self._buckets[bucket_key] = TokenBucket(float(throttle))
            await bucket.acquire()
        if campaign.id in self._stopped:
            return Verdict(row.id, "stopped", "campaign stopped"), None
        if self.refuses(row, campaign.account_id, since_ms=claimed_ms - 1000):
            return Verdict(row.id, "suppressed", "opted out after the message was queued"), None
        target = LinkTarget(campaign.account_id, campaign.id, row.variant, row.user_key, row.channel)
        content = view.content.get(row.variant) or next(iter(view.content.values()))
        context = {
            "Profile": row.context.get("profile", {}),
            "Event": row.context.get("event") or campaign.rules.event or {},
            "Campaign": {"id": campaign.id, "name": campaign.name, "variant": row.variant},
        }
        try:
            rendered = content.render(context)
        except TemplateError as exc:
            return Verdict(row.id, "rejected", str(exc)), None
        result = await adapter.send(self._message(row, campaign, rendered, target))
        return self._verdict(row, campaign, result)

    def _message(
        self, row: Claimed, campaign: Campaign, rendered: dict[str, str], target: LinkTarget
    ) -> OutboundMessage:
        key = idempotency_key(campaign.id, row.variant, row.user_key, row.channel, row.device)
        raw: dict[str, Any] = next(
            (v["content"] for v in campaign.variants if v["name"] == row.variant),
            campaign.variants[0]["content"],
        )
        if campaign.channel == "email":
            unsubscribe = self.links.unsubscribe(target)
            html = rendered.get("html")
            return OutboundMessage(
                key,
                row.address,
                rendered.get("body", ""),
                subject=rendered.get("subject"),
                html=self.links.track_html(html, target) if html else None,
                headers={
                    "List-Unsubscribe": f"<{unsubscribe}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            )
        if campaign.channel == "webhook":
            hook = campaign.rules.webhook
            assert hook is not None, "a webhook campaign has a webhook target"
            return OutboundMessage(
                key,
                hook.url,
                rendered.get("body", ""),
                secret=hook.secret,
                data={
                    "campaign_id": campaign.id,
                    "variant": row.variant,
                    "user_key": row.user_key,
                    "content": rendered,
                    "profile": row.context.get("profile", {}),
                },
            )
        platform_parts = raw.get("platform_specific", {})
        data: dict[str, Any] = {"wzrk_id": f"{campaign.id}_{row.variant}"}
        if isinstance(platform_parts, dict):
            part = platform_parts.get("ios" if row.platform == "apns" else "android")
            if isinstance(part, dict):
                data.update({k: v for k, v in part.items() if isinstance(v, str | int | float | bool)})
        return OutboundMessage(
            key,
            row.address,
            rendered.get("body", ""),
            title=rendered.get("title"),
            platform=row.platform,
            data=data,
        )

    def _verdict(
        self, row: Claimed, campaign: Campaign, result: SendResult
    ) -> tuple[Verdict, Feedback | None]:
        now = self.now_ms()
        # Anything but an accepted message is a failed attempt for the failure-rate alert.
        DELIVERIES.labels(row.channel, "sent" if result.outcome == "sent" else "failed").inc()
        if result.outcome == "sent":
            self.stats.sent += 1
            feedback = Feedback(
                campaign.account_id,
                row.user_key,
                "Notification Sent",
                campaign.id,
                row.variant,
                row.channel,
                now,
            )
            return Verdict(row.id, "sent", result.detail, result.provider_id, sent_ms=now), feedback
        if result.outcome == "failed":
            return self._retry_or_fail(row, result.detail, result.retry_after_s), None
        if result.outcome == "unregistered" and row.channel == "push":
            self._dead_tokens.append((campaign.account_id, row.address, now))
        failed = Feedback(
            campaign.account_id,
            row.user_key,
            "Notification Failed",
            campaign.id,
            row.variant,
            row.channel,
            now,
            {"reason": result.outcome, "detail": result.detail[:200]},
        )
        return Verdict(row.id, result.outcome, result.detail), failed

    def _retry_or_fail(self, row: Claimed, detail: str, retry_after_s: float | None = None) -> Verdict:
        if row.attempts >= MAX_ATTEMPTS:
            return Verdict(row.id, "failed", detail)
        # Never sooner than the provider's Retry-After.
        backoff_ms = max(min(300_000, 1000 * 2**row.attempts), int((retry_after_s or 0) * 1000))
        return Verdict(row.id, "pending", detail, due_ms=self.now_ms() + backoff_ms)

    # Recording.

    async def _record_loop(self) -> None:
        # Each write (with its feedback publish) costs about the same whatever its size, so batches grow until
        # the free part of the window is just what the senders need to go on while one is written: a message
        # each, or half the window when there are more senders than that.
        enough_slots = max(1, self.send_window // 2, self.send_window - self.settings.messaging_senders)
        while True:
            first = await self._results.get()
            batch = [first]
            slots = int(first[2])
            deadline = time.monotonic() + 0.05
            while len(batch) < 1000 and slots < enough_slots:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._results.get(), timeout))
                except TimeoutError:
                    break
                slots += batch[-1][2]
            await self._record(batch)

    async def _record(self, batch: Sequence[tuple[Verdict, Feedback | None, bool]]) -> None:
        """Write a batch of outcomes (retrying until the database takes them), then free their send-window
        slots and publish their feedback events."""
        verdicts = [v for v, _, _ in batch]
        while True:
            try:
                await self.outbox.record(verdicts, worker=self.worker)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording outcomes failed; retrying")
                await asyncio.sleep(0.5)
        for verdict, _, slot in batch:
            self._inflight.discard(verdict.id)
            self.stats.by_status[verdict.status] = self.stats.by_status.get(verdict.status, 0) + 1
            if slot:
                self._window.release()
        await self._record_dead_tokens()
        await self.publisher.publish([f for _, f, _ in batch if f is not None])

    async def _record_dead_tokens(self) -> None:
        """Remember tokens the provider disowned, so no later fill picks them again."""
        dead, self._dead_tokens = self._dead_tokens, []
        for account_id, token, now_ms in dead:
            await consent.set_consent(
                self.engine,
                account_id=account_id,
                kind="token",
                subject=token,
                channel="push",
                state="unsubscribed",
                source="provider",
                now_ms=now_ms,
            )

    # Leases.

    async def _lease_loop(self) -> None:
        interval = max(0.2, self.settings.messaging_lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.outbox.renew(
                    list(self._inflight),
                    worker=self.worker,
                    until_ms=self.now_ms() + int(self.settings.messaging_lease_s * 1000),
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing leases failed")

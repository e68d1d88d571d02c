"""The messaging service of one process: providers, link signing, the sender loop, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from tapwire_core.bus import Bus
from tapwire_core.clock import Clock, epoch_ms, system_clock
from tapwire_core.control.email_feedback import SuppressionReason
from tapwire_core.control.messaging.consent import TRANSACTIONAL_SUPPRESSIONS
from tapwire_core.control.store import ControlStore
from tapwire_core.egress import policy_from_settings
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.audience import AudienceResolver, DefaultAudienceResolver
from tapwire_messaging.campaign_store import Campaigns
from tapwire_messaging.campaigns import CampaignSpec, MalformedCampaign, UnrunnableCampaign, parse_campaign
from tapwire_messaging.channels import Providers, build_providers
from tapwire_messaging.channels.sdk_messages import SdkMessageAdapter
from tapwire_messaging.delivery.sender import Sender
from tapwire_messaging.delivery.wakeup import Wakeup
from tapwire_messaging.email_feedback.runtime import EmailFeedback, SnsFetching
from tapwire_messaging.feedback import FeedbackPublisher
from tapwire_messaging.interactions import Interactions
from tapwire_messaging.journeys.definition import JourneyRefused, parse_definition
from tapwire_messaging.journeys.positions import JourneyPositions
from tapwire_messaging.journeys.runner import JourneyRunner
from tapwire_messaging.journeys.store import Journey, Journeys, send_steps
from tapwire_messaging.links import Links
from tapwire_messaging.outbox import Outbox
from tapwire_messaging.signing import LinkSigner, load_or_create_secret
from tapwire_messaging.triggers.evaluator import TriggerEvaluator
from tapwire_messaging.triggers.firing import TimerRunner

log = logging.getLogger(__name__)


class MessagingService:
    """Built from settings and the process's stores; ``start`` needs the control store started first."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ControlStore,
        bus: Bus | None,
        warehouse: Warehouse | None,
        providers: Providers | None = None,
        resolver: AudienceResolver | None = None,
        clock: Clock = system_clock,
        run_sender: bool = True,
        sns_fetching: SnsFetching | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.warehouse = warehouse
        self.clock = clock
        # What customer-supplied URLs may reach beyond public addresses (checked again on every connection).
        self.egress = policy_from_settings(settings)
        self.resolver = resolver or DefaultAudienceResolver(
            warehouse, store, cluster=settings.clickhouse_cluster is not None
        )
        self.publisher = FeedbackPublisher(bus, settings.events_topic, timeout_s=settings.bus_timeout_s)
        self._providers = providers
        self._run_sender = run_sender
        self._sender: Sender | None = None
        self._links: Links | None = None
        self._sns_fetching = sns_fetching or SnsFetching()
        self._email_feedback: EmailFeedback | None = None
        self.evaluator: TriggerEvaluator | None = None
        self.timer_runner: TimerRunner | None = None
        self.journey_runner: JourneyRunner | None = None
        self._trigger_wakeup = Wakeup()
        self._journey_wakeup = Wakeup()
        self._trigger_stopping = asyncio.Event()
        self._trigger_tasks: list[asyncio.Task[None]] = []

    @property
    def campaigns(self) -> Campaigns:
        return Campaigns(self.store.engine)

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.store.engine)

    @property
    def interactions(self) -> Interactions:
        return Interactions(self.store.engine)

    @property
    def providers(self) -> Providers:
        if self._sender is None or self._providers is None:
            raise RuntimeError("the messaging service is not started")
        return self._providers

    @property
    def links(self) -> Links:
        if self._links is None:
            raise RuntimeError("the messaging service is not started")
        return self._links

    @property
    def email_feedback(self) -> EmailFeedback:
        if self._email_feedback is None:
            raise RuntimeError("the messaging service is not started")
        return self._email_feedback

    @property
    def sender(self) -> Sender:
        if self._sender is None:
            raise RuntimeError("the messaging service is not started")
        return self._sender

    async def _campaign_cutoff(self, account_id: str, campaign_id: int) -> int | None:
        campaign = await self.campaigns.get(campaign_id, account_id)
        return None if campaign is None else campaign.cutoff_ms

    def now_ms(self) -> int:
        return epoch_ms(self.clock())

    def now_s(self) -> float:
        """The clock in epoch seconds, as link tokens and their use counter keep time."""
        return self.clock().timestamp()

    async def estimate_reach(self, account_id: str, spec: CampaignSpec) -> int:
        """How many users the campaign would reach now. Raises UnrunnableCampaign (no provider for its
        channel) or AudienceError, and what the warehouse raises."""
        self._require_provider(spec)
        if spec.trigger is not None:
            raise UnrunnableCampaign(
                "a triggered campaign's reach depends on the events to come; nothing to estimate"
            )
        return await self.resolver.source(spec.audience).estimate(account_id)

    async def create_campaign(self, account_id: str, spec: CampaignSpec) -> int:
        """Store the campaign, to be started by a sender when its time comes, and wake this process's sender.
        Raises UnrunnableCampaign (no provider for its channel) or AudienceError (a saved segment that does not
        exist or no longer compiles), storing nothing."""
        self._require_provider(spec)
        trigger = spec.trigger
        audience = spec.audience if trigger is None else trigger.segment()
        if audience is not None:
            await self.resolver.source(audience).check(account_id)
        campaign_id = await self.campaigns.create(account_id, spec)
        if trigger is not None and self.evaluator is not None:
            self.evaluator.invalidate()
        self.sender.wake()
        return campaign_id

    @property
    def journeys(self) -> Journeys:
        return Journeys(self.store.engine)

    @property
    def journey_positions(self) -> JourneyPositions:
        return JourneyPositions(self.store.engine)

    async def save_journey(
        self, account_id: str, payload: Any, journey: Journey | None = None
    ) -> tuple[int, int]:
        """Create a journey from ``payload`` (``name``, ``definition``), or store the next version of
        ``journey``; returns (id, version). Raises MalformedCampaign / UnrunnableCampaign naming the problem
        (a definition that does not validate, a send step that could not run, an unknown segment), storing
        nothing."""
        if not isinstance(payload, dict):
            raise MalformedCampaign("Body must be a JSON object")
        name = payload.get("name", journey.name if journey else None)
        if not isinstance(name, str) or not name.strip():
            raise MalformedCampaign("name is required")
        try:
            definition = parse_definition(payload.get("definition"))
        except JourneyRefused as exc:
            raise UnrunnableCampaign(str(exc)) from exc
        now = self.now_ms()
        steps: dict[str, CampaignSpec] = {}
        for step_name, step in send_steps(definition).items():
            try:
                spec = parse_campaign(step.campaign_request(name), now_ms=now, egress=self.egress)
            except (MalformedCampaign, UnrunnableCampaign) as exc:
                raise UnrunnableCampaign(f"definition.steps.{step_name}: {exc}") from exc
            self._require_provider(spec)
            steps[step_name] = spec
        for audience in (
            definition.entry.segment(),
            definition.entry.trigger and definition.entry.trigger.segment(),
        ):
            if audience:
                await self.resolver.source(audience).check(account_id)
        if journey is None:
            journey_id = await self.journeys.create(
                account_id, name.strip()[:200], definition, steps, now_ms=now
            )
            version = 1
        else:
            journey_id, version = (
                journey.id,
                await self.journeys.new_version(journey, definition, steps, now_ms=now),
            )
        if self.evaluator is not None:
            self.evaluator.invalidate()
        self._journey_wakeup.set()
        return journey_id, version

    def _require_provider(self, spec: CampaignSpec) -> None:
        # Webhook campaigns bring their own target; every other channel needs its provider configured here.
        if spec.channel != "webhook" and self.providers.get(spec.channel) is None:
            raise UnrunnableCampaign(f"no {spec.channel} provider is configured on this deployment")

    async def start(self) -> None:
        secret = load_or_create_secret(self.settings.messaging_secret, self.settings.data_dir.resolve())
        self._links = Links(
            self.settings.resolved_public_url(),
            LinkSigner(secret),
            ttl_s=self.settings.messaging_link_ttl_days * 86400,
            clock=self.now_s,
            campaign_cutoff=self._campaign_cutoff,
        )
        providers = self._providers or build_providers(self.settings)
        if providers.inapp is None or providers.inbox is None:
            # In-app and inbox messages need no provider: they wait in the control store for the SDKs.
            sdk = SdkMessageAdapter(self.store.engine)
            providers.inapp = providers.inapp or sdk
            providers.inbox = providers.inbox or sdk
        self._providers = providers
        await providers.start()
        self._email_feedback = EmailFeedback(
            self.settings,
            engine=self.store.engine,
            publisher=self.publisher,
            secret=secret.encode(),
            egress=self.egress,
            now_ms=self.now_ms,
            on_suppressed=self._suppressed,
            sns_fetching=self._sns_fetching,
        )
        await self._email_feedback.start()
        self._sender = Sender(
            engine=self.store.engine,
            providers=providers,
            publisher=self.publisher,
            resolver=self.resolver,
            warehouse=self.warehouse,
            links=self._links,
            settings=self.settings,
            clock=self.clock,
            email_feedback=self._email_feedback,
        )
        if self._run_sender:
            self._sender.start()
            self._start_triggers(self._sender)
        log.info("messaging ready", extra={"worker": self._sender.worker})

    def _suppressed(self, account_id: str, address: str, at_ms: int, reason: SuppressionReason) -> None:
        """An address bounced or complained: messages to it this process already claimed are not sent."""
        if self._sender is not None:
            # Transactional messages stop at hard bounces and complaints, not at a run of soft bounces.
            every_message = reason in TRANSACTIONAL_SUPPRESSIONS
            self._sender.note_opt_out(
                account_id, "email", address, "email", at_ms, every_message=every_message
            )

    def _start_triggers(self, sender: Sender) -> None:
        """The trigger evaluator (with a bus to read events from) and the timer runner, beside the sender."""
        self.timer_runner = TimerRunner(
            engine=self.store.engine,
            warehouse=self.warehouse,
            settings=self.settings,
            clock=self.clock,
            wakeup=self._trigger_wakeup,
            on_rows=sender.wake,
            on_positions=self._journey_wakeup.set,
        )
        self.journey_runner = JourneyRunner(
            store=self.store,
            warehouse=self.warehouse,
            resolver=self.resolver,
            settings=self.settings,
            clock=self.clock,
            wakeup=self._journey_wakeup,
            on_rows=sender.wake,
        )
        loops = [
            self.timer_runner.run(self._trigger_stopping),
            self.journey_runner.run(self._trigger_stopping),
        ]
        if self.bus is not None:
            self.evaluator = TriggerEvaluator(
                bus=self.bus,
                engine=self.store.engine,
                store=self.store,
                warehouse=self.warehouse,
                settings=self.settings,
                clock=self.clock,
                on_due=self._trigger_wakeup.set,
            )
            loops.append(self.evaluator.run(self._trigger_stopping))
        self._trigger_tasks = [
            asyncio.create_task(loop, name=f"triggers-{i}") for i, loop in enumerate(loops)
        ]

    async def _stop_triggers(self) -> None:
        self._trigger_stopping.set()
        self._trigger_wakeup.set()
        self._journey_wakeup.set()
        for task in self._trigger_tasks:
            task.cancel()
        for task in self._trigger_tasks:
            with contextlib.suppress(BaseException):
                await task
        self._trigger_tasks = []

    async def stop(self) -> None:
        await self._stop_triggers()
        if self._email_feedback is not None:
            await self._email_feedback.close()
        if self._sender is not None:
            await self._sender.stop()
        if self._providers is not None:
            await self._providers.close()

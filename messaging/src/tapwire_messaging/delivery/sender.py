"""The sender: the delivery pieces of one process, wired together, started and stopped as one."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.clock import Clock, epoch_ms, system_clock
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.audience import AudienceResolver
from tapwire_messaging.campaign_store import Campaigns
from tapwire_messaging.channels import Providers
from tapwire_messaging.delivery.audience_rules import AudienceRules
from tapwire_messaging.delivery.campaign_views import CampaignViews
from tapwire_messaging.delivery.claimer import Claimer, Dispatch
from tapwire_messaging.delivery.dispatcher import Dispatcher
from tapwire_messaging.delivery.filling import OutboxFiller
from tapwire_messaging.delivery.leases import LeaseKeeper
from tapwire_messaging.delivery.messages import MessageBuilder
from tapwire_messaging.delivery.opt_outs import RecentOptOuts
from tapwire_messaging.delivery.outcomes import Outcome, SenderStats
from tapwire_messaging.delivery.recorder import Recorder
from tapwire_messaging.delivery.scheduler import Scheduler
from tapwire_messaging.delivery.wakeup import Wakeup
from tapwire_messaging.email_feedback.runtime import EmailFeedback
from tapwire_messaging.feedback import FeedbackPublisher
from tapwire_messaging.links import Links
from tapwire_messaging.outbox import Outbox, Verdict


class Sender:
    """Tasks, all in the running event loop: one scheduler, one claimer, ``messaging_senders`` dispatchers, one
    recorder and one lease keeper (see :mod:`tapwire_messaging.delivery`)."""

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
        email_feedback: EmailFeedback | None = None,
    ) -> None:
        """``email_feedback``: return-path tokens for emails, and the intake that records refused ones."""
        self.settings = settings
        self.clock = clock
        self.worker = worker_id or f"sender-{uuid.uuid4().hex[:12]}"
        self.stats = SenderStats()
        self.send_window = settings.resolved_send_window()
        campaigns, outbox = Campaigns(engine), Outbox(engine)
        self._wakeup = Wakeup()
        self._stopping = asyncio.Event()
        self._dispatch: asyncio.Queue[Dispatch] = asyncio.Queue(
            maxsize=max(2 * settings.messaging_claim_batch, settings.messaging_senders)
        )
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._window = asyncio.Semaphore(self.send_window)
        self._in_flight: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.opt_outs = RecentOptOuts(engine, clock)
        views = CampaignViews(campaigns)
        self.filler = OutboxFiller(
            engine=engine,
            campaigns=campaigns,
            outbox=outbox,
            resolver=resolver,
            warehouse=warehouse,
            clock=clock,
            on_rows=self._wakeup.set,
        )
        self._scheduler = Scheduler(
            campaigns=campaigns,
            filler=self.filler,
            views=views,
            opt_outs=self.opt_outs,
            clock=clock,
            wakeup=self._wakeup,
            poll_s=settings.messaging_poll_s,
        )
        self._claimer = Claimer(
            outbox=outbox,
            views=views,
            rules=AudienceRules(engine=engine, warehouse=warehouse, outbox=outbox),
            dispatch=self._dispatch,
            outcomes=self._outcomes,
            in_flight=self._in_flight,
            stats=self.stats,
            settings=settings,
            worker=self.worker,
            clock=clock,
            wakeup=self._wakeup,
        )
        self._dispatcher = Dispatcher(
            providers=providers,
            messages=MessageBuilder(links, email_feedback),
            views=views,
            opt_outs=self.opt_outs,
            stats=self.stats,
            clock=clock,
        )
        self._recorder = Recorder(
            outbox=outbox,
            engine=engine,
            publisher=publisher,
            in_flight=self._in_flight,
            window=self._window,
            stats=self.stats,
            worker=self.worker,
            intake=email_feedback.intake if email_feedback is not None else None,
        )
        self._leases = LeaseKeeper(
            outbox=outbox,
            in_flight=self._in_flight,
            lease_s=settings.messaging_lease_s,
            worker=self.worker,
            clock=clock,
        )

    def wake(self) -> None:
        """Look for due work now instead of at the next poll (after a campaign was created)."""
        self._wakeup.set()

    def note_opt_out(
        self,
        account_id: str,
        kind: str,
        subject: str,
        channel: str,
        updated_ms: int,
        *,
        every_message: bool = False,
    ) -> None:
        """An opt-out this process just wrote: refuse it from the next message on, queued ones included (with
        ``every_message``, transactional ones too)."""
        self.opt_outs.note(account_id, kind, subject, channel, updated_ms, every_message=every_message)

    def start(self) -> None:
        # Each write (with its feedback publish) costs about the same whatever its size, so batches grow until
        # the free part of the window is just what the dispatchers need to go on while one is written: a
        # message each, or half the window when there are more dispatchers than that.
        senders = self.settings.messaging_senders
        enough_slots = max(1, self.send_window // 2, self.send_window - senders)
        loops: list[Coroutine[Any, Any, None]] = [
            self._scheduler.run(self._stopping),
            self._claimer.run(self._stopping),
            self._recorder.run(self._outcomes, enough_slots=enough_slots),
            self._leases.run(),
        ]
        loops += [self._dispatcher.run(self._dispatch, self._outcomes, self._window) for _ in range(senders)]
        self._tasks = [asyncio.create_task(loop, name=f"messaging-{i}") for i, loop in enumerate(loops)]

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming, let in-flight sends finish and record them, then cancel what is left."""
        self._stopping.set()
        self._wakeup.set()
        # Hand queued, unsent rows back at once rather than leaving them to their lease.
        now = epoch_ms(self.clock())
        while not self._dispatch.empty():
            row = self._dispatch.get_nowait().row
            self._outcomes.put_nowait(Outcome(Verdict(row.id, "pending", "sender stopped", due_ms=now)))
        deadline = time.monotonic() + timeout_s
        while (self._in_flight or not self._outcomes.empty()) and time.monotonic() < deadline:  # noqa: ASYNC110 (two conditions, no single event)
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []

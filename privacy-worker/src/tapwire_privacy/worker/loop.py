"""The privacy worker's loop: claim due requests, hand each to the step that answers it, do the chores.

Erasures are grouped by account and served by :class:`~tapwire_privacy.worker.erasure.ErasurePass` (one
operation per store for the whole group); exports, rectifications and objections by
:class:`~tapwire_privacy.worker.answers.Answers`, one at a time; every ``_HOUSEKEEPING_S`` the chores of
:class:`~tapwire_privacy.worker.housekeeping.Housekeeping` run, and between them due notices are delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Final

from tapwire_core.clock import Clock
from tapwire_core.settings import Settings
from tapwire_privacy.bus_copies import TopicLifetime, topic_lifetimes
from tapwire_privacy.notices import WebhookNotifier
from tapwire_privacy.offboarding import STEPS, is_offboarding
from tapwire_privacy.offboarding.steps import OffboardingSteps
from tapwire_privacy.records import RequestView
from tapwire_privacy.registry import Registry
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.stores.base import StoreHandler
from tapwire_privacy.worker.answers import Answers
from tapwire_privacy.worker.erasure import ErasurePass
from tapwire_privacy.worker.forwarding import Forwarding
from tapwire_privacy.worker.housekeeping import Housekeeping
from tapwire_privacy.worker.progress import ProgressSaver

log = logging.getLogger(__name__)

_HOUSEKEEPING_S: Final = 60.0


class PrivacyWorker:
    """One worker process's loop. Several may run against one control store: leases keep them apart."""

    def __init__(
        self,
        *,
        repository: PrivacyRepository,
        registry: Registry,
        settings: Settings,
        clock: Clock,
        notifier: WebhookNotifier | None = None,
        owner: str | None = None,
        lease_s: float = 600.0,
        bus_lifetimes: Sequence[TopicLifetime] | None = None,
        on_access_revoked: Callable[[str], None] | None = None,
    ) -> None:
        """``bus_lifetimes``: how long copies on the bus in use may outlive their publication (by default, Kafka's
        topics as the settings describe them). ``on_access_revoked``: told the account id when an offboarding has
        revoked its credentials (the control store's listeners, so this process stops accepting them at once)."""
        self._repo = repository
        self._settings = settings
        self.owner = owner or f"privacy-{secrets.token_hex(6)}"
        self._lease_s = lease_s
        self._stop = asyncio.Event()
        self._next_housekeeping = 0.0
        saver = ProgressSaver(leases=repository.leases, settings=settings, clock=clock, owner=self.owner)
        forwarding = Forwarding(registry.data_recipients)
        self._erasures = ErasurePass(
            repository=repository,
            registry=registry,
            settings=settings,
            clock=clock,
            saver=saver,
            forwarding=forwarding,
            bus_lifetimes=(
                topic_lifetimes(settings, embedded=None) if bus_lifetimes is None else bus_lifetimes
            ),
        )
        self._answers = Answers(
            repository=repository,
            registry=registry,
            settings=settings,
            clock=clock,
            saver=saver,
            forwarding=forwarding,
        )
        self._offboarding = OffboardingSteps(
            repository=repository,
            registry=registry,
            settings=settings,
            clock=clock,
            saver=saver,
            on_revoked=on_access_revoked,
        )
        self._registry = registry
        self._housekeeping = Housekeeping(
            repository=repository, clock=clock, export_dir=self.export_dir, notifier=notifier
        )

    def _stores(self, offboarding: bool) -> list[StoreHandler]:
        """The stores an erasure goes through; an account's offboarding goes on to every control row of it."""
        handlers = list(self._registry.handlers)
        return [*handlers, *self._registry.offboarding_handlers] if offboarding else handlers

    @property
    def export_dir(self) -> Path:
        return self._settings.resolved_export_dir()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Work until ``stop()``; a failing pass is logged and the next one starts after the poll interval."""
        while not self._stop.is_set():
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("privacy worker pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._settings.privacy_poll_s)

    async def tick(self) -> int:
        """One pass: claim due requests and advance each as far as it can go now. Returns how many."""
        claimed = await self._repo.leases.claim(
            owner=self.owner, lease_s=self._lease_s, limit=self._settings.privacy_batch_size
        )
        erasures: dict[tuple[str, bool], list[RequestView]] = defaultdict(list)
        for view in claimed:
            if is_offboarding(view) and view.progress.get("phase") in STEPS:
                continue
            if view.type == "erasure":
                erasures[view.account_id, is_offboarding(view)].append(view)
        async with self._leases_renewed([view.id for view in claimed]):
            for view in claimed:
                if is_offboarding(view) and view.progress.get("phase") in STEPS:
                    await self._offboarding.run(view)
            for (_, offboarding), group in erasures.items():
                await self._erasures.run(group, handlers=self._stores(offboarding))
            for view in claimed:
                if view.type != "erasure":
                    await self._answers.run(view)
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_housekeeping:
            self._next_housekeeping = loop.time() + _HOUSEKEEPING_S
            await self.housekeeping()
        else:
            await self.deliver_notices()
        return len(claimed)

    @contextlib.asynccontextmanager
    async def _leases_renewed(self, request_ids: list[str]) -> AsyncIterator[None]:
        """Renew the lease on ``request_ids`` every third of its length while the block runs: a pass that takes
        long (a whole account's export) keeps its requests, and only a worker that died lets its lease run out."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lease_s / 3)
                try:
                    await self._repo.leases.renew(request_ids, owner=self.owner, lease_s=self._lease_s)
                except Exception:
                    log.warning("renewing privacy request leases failed; will try again", exc_info=True)

        if not request_ids:
            yield
            return
        task = asyncio.create_task(renew(), name="privacy-lease-renewal")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def housekeeping(self) -> None:
        """Expired archives, retention purge, deadline gauges and the overdue log line, notices."""
        await self._housekeeping.run()

    async def refresh_deadline_metrics(self) -> tuple[int, int]:
        """Set the deadline gauges (see ``Housekeeping.refresh_deadline_metrics``)."""
        return await self._housekeeping.refresh_deadline_metrics()

    async def deliver_notices(self) -> None:
        await self._housekeeping.deliver_notices()

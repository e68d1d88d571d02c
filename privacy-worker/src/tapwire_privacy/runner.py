"""Putting the privacy service together for a process: repository, registry, worker task, HTTP service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tapwire_core.bus.embedded_store import Retention
from tapwire_core.clock import Clock, system_clock
from tapwire_core.control.store import ControlStore
from tapwire_core.egress import policy_from_settings
from tapwire_core.privacy.data_recipients import DataRecipient
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_privacy.bus_copies import check_retention, topic_lifetimes
from tapwire_privacy.closure import ClosureSource
from tapwire_privacy.notices import WebhookNotifier
from tapwire_privacy.rate_limit import SlidingWindowLimit
from tapwire_privacy.registry import Coverage, default_registry
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.service import PrivacyService
from tapwire_privacy.stores.base import StoreHandler
from tapwire_privacy.worker import PrivacyWorker

log = logging.getLogger(__name__)


@dataclass
class PrivacyRuntime:
    """The HTTP-facing service and the background worker of one process."""

    service: PrivacyService
    worker: PrivacyWorker
    notifier: WebhookNotifier
    _task: asyncio.Task[None] | None = None

    @classmethod
    def build(
        cls,
        *,
        settings: Settings,
        store: ControlStore,
        warehouse: Warehouse,
        clock: Clock = system_clock,
        extra_handlers: Sequence[StoreHandler] = (),
        extra_sources: Sequence[ClosureSource] = (),
        extra_coverage: Mapping[str, Mapping[str, Coverage]] | None = None,
        data_recipients: Sequence[DataRecipient] = (),
        embedded_bus: Retention | None = None,
    ) -> PrivacyRuntime:
        """What other services contribute (handlers for their stores, closure sources, data recipients)
        comes in through the ``extra_*`` and ``data_recipients`` arguments; the suite's assembly passes them.
        ``embedded_bus``: the embedded log's retention when that is the bus (None: Kafka). Raises
        :class:`~tapwire_privacy.bus_copies.BusRetentionTooLong` where the bus may keep an erased subject's
        records past the legal deadline or their suppression."""
        bus_lifetimes = topic_lifetimes(settings, embedded=embedded_bus)
        check_retention(settings, bus_lifetimes)
        repository = PrivacyRepository(
            store.engine, clock=clock, record_retention_days=settings.privacy_record_retention_days
        )
        registry = default_registry(
            warehouse=warehouse,
            engine=store.engine,
            export_dir=settings.resolved_export_dir(),
            cluster=settings.clickhouse_cluster,
            extra_handlers=extra_handlers,
            extra_sources=extra_sources,
            extra_coverage=extra_coverage,
            data_recipients=data_recipients,
        )
        notifier = WebhookNotifier(store.get_account, egress=policy_from_settings(settings))
        worker = PrivacyWorker(
            repository=repository,
            registry=registry,
            settings=settings,
            clock=clock,
            notifier=notifier,
            bus_lifetimes=bus_lifetimes,
            on_access_revoked=store.credentials_changed,
        )
        service = PrivacyService(
            repository=repository,
            settings=settings,
            clock=clock,
            intake_limit=SlidingWindowLimit(limit=settings.privacy_intake_per_minute, clock=time.monotonic),
        )
        return cls(service=service, worker=worker, notifier=notifier)

    def start(self) -> None:
        self._task = asyncio.create_task(self.worker.run(), name="privacy-worker")

    async def stop(self, timeout_s: float = 30.0) -> None:
        self.worker.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except Exception:  # includes TimeoutError: a pass did not finish in time; its lease runs out
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        await self.notifier.close()

"""The background parts of a service, behind one start/stop interface, and the group that runs them in order.

A worker is built when the app is assembled and touches no connection until ``start``: the process's
connections (``runtime.Components``) are up by then. What a worker offers the routes or the workers after it
(the suppression list, the privacy service, the messaging service) it hands to the ``Wiring`` it was built from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from starlette.datastructures import State

from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.control.privacy.suppression import SuppressionList
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.loader.pipeline import Loader
from tapwire_messaging.data_recipients import messaging_data_recipients
from tapwire_messaging.service import MessagingService
from tapwire_privacy.bus_copies import BusRetentionTooLong
from tapwire_privacy.runner import PrivacyRuntime
from tapwire_services import runtime
from tapwire_services.accounts import announce_accounts

log = logging.getLogger(__name__)


class Worker(Protocol):
    """One background part of a service.

    ``start`` runs before the first request is served, after the workers listed before it started; it raises
    when the part cannot run (the process then does not start). ``stop`` runs after the last request, in the
    reverse order, only for a worker whose ``start`` returned; it drains what it can and does not raise.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Wiring:
    """What workers are built from, and where they leave what routes and later workers use."""

    settings: Settings
    components: runtime.Components
    context: ServiceContext
    """The routes' context; a worker may fill in a part of it (e.g. ``suppressions``) when it starts."""
    state: State
    """The app's state, where routes look up a domain's service (``messaging``, ``privacy``)."""
    embedded: bool


WorkerFactory = Callable[[Wiring], Worker]


class WorkerGroup:
    """Starts workers in order and stops the started ones in reverse, also when a later one failed to start."""

    def __init__(self, workers: Sequence[Worker] = ()) -> None:
        self._workers = list(workers)
        self._started: list[Worker] = []

    def add(self, worker: Worker) -> None:
        """Append ``worker`` to the start order; only before ``start``."""
        if self._started:
            raise RuntimeError("workers are added before the group starts")
        self._workers.append(worker)

    async def start(self) -> None:
        for worker in self._workers:
            try:
                await worker.start()
            except BaseException:
                await self.stop()
                raise
            self._started.append(worker)

    async def stop(self) -> None:
        while self._started:
            worker = self._started.pop()
            try:
                await worker.stop()
            except Exception:
                log.exception("stopping %s failed", type(worker).__name__)


class Connections:
    """The process's bus, warehouse and control store (connected, migrated); always the first worker."""

    def __init__(self, wiring: Wiring) -> None:
        self._components = wiring.components

    async def start(self) -> None:
        try:
            await self._components.start()
        except BaseException:
            await self._components.close()  # the ones that did connect
            raise

    async def stop(self) -> None:
        await self._components.close()


class AccountAnnouncement:
    """Applies ``TAPWIRE_ACCOUNTS`` (the demo account in embedded mode) once the control store is up."""

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring

    async def start(self) -> None:
        wiring = self._wiring
        await announce_accounts(wiring.components.store, wiring.settings, embedded=wiring.embedded)

    async def stop(self) -> None:
        return None


class Suppressions:
    """Keeps the suppression list in memory and gives it to ingestion (``context.suppressions``)."""

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring
        self._list: SuppressionList | None = None

    async def start(self) -> None:
        wiring = self._wiring
        self._list = SuppressionList(
            wiring.components.store.engine, refresh_s=wiring.settings.privacy_suppression_refresh_s
        )
        await self._list.start()
        wiring.context.suppressions = self._list

    async def stop(self) -> None:
        if self._list is not None:
            self._wiring.context.suppressions = None
            await self._list.close()


class PrivacyWork:
    """The privacy worker's loop, and the privacy service its routes use (``state.privacy``)."""

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring
        self._runtime: PrivacyRuntime | None = None

    async def start(self) -> None:
        wiring = self._wiring
        components = wiring.components
        if components.warehouse is None:
            raise runtime.ConfigurationError("the privacy worker needs a warehouse")
        try:
            self._runtime = PrivacyRuntime.build(
                settings=wiring.settings,
                store=components.store,
                warehouse=components.warehouse,
                data_recipients=messaging_data_recipients(components.store.engine, wiring.settings),
                embedded_bus=(components.bus.retention if isinstance(components.bus, EmbeddedBus) else None),
            )
        except BusRetentionTooLong as exc:
            raise runtime.ConfigurationError(str(exc)) from exc
        wiring.state.privacy = self._runtime.service
        self._runtime.start()

    async def stop(self) -> None:
        if self._runtime is not None:
            await self._runtime.stop()


class Messaging:
    """Campaign sending and its feedback; the service exists from assembly on, since routes look it up."""

    def __init__(self, wiring: Wiring) -> None:
        components = wiring.components
        self.service = MessagingService(
            wiring.settings, store=components.store, bus=components.bus, warehouse=components.warehouse
        )
        wiring.state.messaging = self.service

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()


class LoaderSupervisor:
    """Runs the loader in a task and restarts it after a crash; every restart replays from the last commit.

    The loader drops suppressed subjects through ``context.suppressions``, so it starts after ``Suppressions``.
    """

    def __init__(self, wiring: Wiring, *, max_backoff_s: float = 30.0, stop_timeout_s: float = 30.0) -> None:
        self._wiring = wiring
        self._max_backoff_s = max_backoff_s
        self._stop_timeout_s = stop_timeout_s
        self.loader: Loader | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        wiring = self._wiring
        components = wiring.components
        if components.bus is None or components.warehouse is None:
            raise runtime.ConfigurationError("the loader needs a bus and a warehouse")
        self.loader = Loader(
            bus=components.bus,
            warehouse=components.warehouse,
            settings=wiring.settings,
            suppressions=wiring.context.suppressions,
        )
        self._task = asyncio.create_task(self._supervise(self.loader), name="loader")

    async def _supervise(self, loader: Loader) -> None:
        delay = 0.5
        while not self._stopping:
            try:
                await loader.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "loader crashed; restarting from the last committed offsets", extra={"retry_in_s": delay}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)

    async def stop(self) -> None:
        self._stopping = True
        if self.loader is not None:
            self.loader.stop()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self._stop_timeout_s)
        except Exception:  # includes TimeoutError: the loader did not drain in time
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

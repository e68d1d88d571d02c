"""What the gateway's routes need, injected through the app factory (never imported as globals)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tapwire_core.bus import Bus
from tapwire_core.control.console.directory import ConsoleDirectory
from tapwire_core.control.privacy.suppression import SuppressionCheck
from tapwire_core.control.store import ControlStore
from tapwire_core.http.body_budget import BodyBudget
from tapwire_core.http.concurrency import ConcurrencyLimiter
from tapwire_core.pack_coalescing import CoalescingPublisher
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse


class AccountView(Protocol):
    """The parts of an account the gateway reads."""

    @property
    def id(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def settings(self) -> Mapping[str, Any]: ...


class Authenticator(Protocol):
    """``client`` is the caller's address, for the limit on failed attempts (see ``AccountDirectory``)."""

    async def authenticate_passcode(
        self, account_id: str, passcode: str, *, client: str | None = None
    ) -> AccountView | None:
        """The account when ``passcode`` is one of its live passcodes, else None. May hit the database; raises
        TooManyFailures or CredentialStoreUnavailable."""
        ...

    async def authenticate_write_key(
        self, write_key: str, *, client: str | None = None
    ) -> AccountView | None:
        """The account holding ``write_key`` as a live write key, else None. May hit the database."""
        ...

    def write_key_scope(self, write_key: str) -> bytes:
        """A stable name for ``write_key`` that reveals nothing about it without the credential secret."""
        ...


ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


@dataclass
class ServiceContext:
    """Per-process dependencies. A service leaves the stores it does not use as None."""

    settings: Settings
    authenticator: Authenticator
    readiness: ReadinessCheck
    bus_: Bus | None = None
    warehouse_: Warehouse | None = None
    store_: ControlStore | None = None
    limiter: ConcurrencyLimiter = field(default_factory=ConcurrencyLimiter)
    suppressions: SuppressionCheck | None = None
    """Erased subjects whose records ingestion drops (None: nothing is suppressed)."""
    body_budget: BodyBudget | None = None
    """Memory for request bodies in flight (None: from ``settings.body_memory_bytes``, made by ``create_app``)."""
    advisory_checks: frozenset[str] = frozenset()
    """Readiness checks reported but not required (the gateway serves cached credentials without its database)."""
    console: ConsoleDirectory | None = None
    """Console users, sessions and the audit log (None: console sessions are not accepted here)."""
    _publisher: CoalescingPublisher | None = None

    @property
    def publisher(self) -> CoalescingPublisher:
        """The process's publisher of ingested envelopes on ``bus`` (shared packs for concurrent requests)."""
        if self._publisher is None:
            self._publisher = CoalescingPublisher(self.bus)
        return self._publisher

    @property
    def bus(self) -> Bus:
        if self.bus_ is None:
            raise RuntimeError("this service runs without a bus")
        return self.bus_

    @property
    def warehouse(self) -> Warehouse:
        if self.warehouse_ is None:
            raise RuntimeError("this service runs without a warehouse")
        return self.warehouse_

    @property
    def store(self) -> ControlStore:
        if self.store_ is None:
            raise RuntimeError("this service runs without a control store")
        return self.store_

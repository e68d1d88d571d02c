"""Assembling a process from settings: which bus, warehouse and control store, started and stopped in order."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from tapwire_core.bus import Bus
from tapwire_core.control.accounts.lookup import (
    CredentialSecretError,
    LookupDigests,
    load_or_create_credential_secret,
)
from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_core.warehouse.migrations import migrate, schema_is_current

if TYPE_CHECKING:
    from tapwire_core.bus.embedded_store import Retention

log = logging.getLogger(__name__)


class ConfigurationError(Exception):
    """Settings do not describe a runnable process (e.g. distributed mode without a Kafka address)."""


class _Closable(Protocol):
    async def close(self) -> None: ...


@dataclass
class Components:
    """The connections one process holds. ``start`` brings them up in dependency order; ``close`` reverses."""

    settings: Settings
    store: ControlStore
    bus: Bus | None = None
    warehouse: Warehouse | None = None
    _started: list[tuple[str, _Closable]] = field(default_factory=list)

    async def start(self) -> None:
        settings = self.settings
        await self.store.start()
        self._started.append(("store", self.store))
        if self.bus is not None:
            await self.bus.start()
            self._started.append(("bus", self.bus))
            await self.bus.ensure_topic(settings.events_topic, settings.topic_partitions)
            await self.bus.ensure_topic(settings.dead_letter_topic, settings.topic_partitions)
        if self.warehouse is not None:
            await self.warehouse.start()
            self._started.append(("warehouse", self.warehouse))
            await migrate(self.warehouse, cluster=settings.clickhouse_cluster)

    async def readiness(self) -> dict[str, bool]:
        checks: dict[str, bool] = {"control_store": await _safe(self.store.ping())}
        if self.bus is not None:
            checks["bus"] = await _safe(self.bus.healthy())
        if self.warehouse is not None:
            checks["warehouse"] = await _safe(self.warehouse.ping())
            checks["warehouse_schema"] = checks["warehouse"] and await _safe(
                schema_is_current(self.warehouse)
            )
        return checks

    async def close(self) -> None:
        for name, resource in reversed(self._started):
            try:
                await resource.close()
            except Exception:
                log.exception("closing %s failed", name)
        self._started.clear()


async def _safe(check: object) -> bool:
    with contextlib.suppress(Exception):
        return bool(await check)  # type: ignore[misc]
    return False


def _log_retention(settings: Settings) -> Retention:
    """The embedded log's time bound; it looks for records past it every 30 s, or sooner for a short bound, so
    a record never outlives the bound by more than a tenth of it (the privacy worker waits that long)."""
    from tapwire_core.bus.embedded_store import Retention

    max_age_s = settings.embedded_log_retention_hours * 3600
    return Retention(max_age_s=max_age_s, interval_s=min(30.0, max_age_s / 10))


def embedded(settings: Settings) -> Components:
    """Everything in-process under ``TAPWIRE_DATA_DIR``: SQLite log, chDB, SQLite control plane."""
    from tapwire_core.bus.embedded import EmbeddedBus
    from tapwire_core.warehouse.chdb import ChdbWarehouse

    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    return Components(
        settings=settings,
        store=ControlStore(
            f"sqlite+aiosqlite:///{data / 'control.db'}",
            lookup_digests=lookup_digests(settings, embedded=True),
        ),
        bus=EmbeddedBus(data / "log", retention=_log_retention(settings)),
        warehouse=ChdbWarehouse(data / "chdb"),
    )


def lookup_digests(settings: Settings, *, embedded: bool) -> LookupDigests:
    """How this process finds credentials: ``TAPWIRE_CREDENTIAL_SECRET``, or in embedded mode a secret generated
    into ``TAPWIRE_DATA_DIR`` on first start. Raises ConfigurationError when distributed mode lacks it."""
    configured = settings.credential_secret
    if not embedded and not (configured and configured.strip()):
        raise ConfigurationError(
            "TAPWIRE_CREDENTIAL_SECRET is required: every process that checks passcodes or write keys must key "
            "their lookup digests with the same secret (32+ random characters)"
        )
    try:
        return LookupDigests.parse(load_or_create_credential_secret(configured, settings.data_dir.resolve()))
    except CredentialSecretError as exc:
        raise ConfigurationError(str(exc)) from exc


def distributed(settings: Settings, *, bus: bool, warehouse: bool, credentials: bool = True) -> Components:
    """Kafka, ClickHouse and PostgreSQL from the environment; only the ones this service needs. ``credentials``:
    the service checks passcodes or write keys, so it needs ``TAPWIRE_CREDENTIAL_SECRET`` (any other service uses
    it when set, e.g. to apply ``TAPWIRE_ACCOUNTS``)."""
    from tapwire_core.bus.kafka import KafkaBus
    from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse

    if not settings.database_url:
        raise ConfigurationError("TAPWIRE_DATABASE_URL is required in distributed mode")
    if bus and not settings.kafka_bootstrap:
        raise ConfigurationError("TAPWIRE_KAFKA_BOOTSTRAP is required for this service")
    if warehouse and not settings.clickhouse_url:
        raise ConfigurationError("TAPWIRE_CLICKHOUSE_URL is required for this service")
    return Components(
        settings=settings,
        store=ControlStore(
            settings.database_url,
            lookup_digests=lookup_digests(settings, embedded=False)
            if credentials or settings.credential_secret
            else None,
        ),
        bus=KafkaBus(settings.kafka_bootstrap or "") if bus else None,
        # The read timeout outlasts the query service's own limit, so ClickHouse stops a long statement itself
        # (a 422 naming the limit) before the client would give up on it (a 503).
        warehouse=ClickHouseWarehouse(
            settings.clickhouse_url or "", timeout_s=max(60.0, settings.query_max_execution_s + 15.0)
        )
        if warehouse
        else None,
    )

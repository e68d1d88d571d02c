"""Every table has a privacy decision: the registry test derives the tables from the schemas themselves."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, String, Table
from sqlalchemy.ext.asyncio import create_async_engine

from tapwire_core.control.base import Base
from tapwire_core.privacy.scope import Scope
from tapwire_core.warehouse import Warehouse, schema
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import AddProjection, CreateTable, DropTable, Migration, runner
from tapwire_privacy import registry as registry_module
from tapwire_privacy import schemas
from tapwire_privacy.registry import Exempt, Registry, coverage_gaps, default_registry
from tapwire_privacy.stores.base import StoreHandler, Verification


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    # Handlers connect lazily, so building the registry touches no infrastructure.
    return default_registry(
        warehouse=ChdbWarehouse(tmp_path / "unused"),
        engine=create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"),
        export_dir=tmp_path,
    )


@pytest.fixture
def message_log_migration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A later migration adding a user-level table, as the messaging service will."""
    extra = Migration(
        version=len(runner.migrations()) + 1,
        name="message_log",
        forward=(
            CreateTable(
                name="message_log",
                columns=(("account_id", "String"), ("user_key", "String"), ("body", "String")),
                engine="MergeTree",
                order_by="(account_id, user_key)",
            ),
        ),
        backward=(DropTable("message_log"),),
    )
    shipped = runner.migrations()
    monkeypatch.setattr(schemas, "migrations", lambda: (*shipped, extra))
    schemas.warehouse_tables.cache_clear()
    yield
    schemas.warehouse_tables.cache_clear()


@pytest.fixture
def subscriptions_table() -> Iterator[None]:
    table = Table("subscriptions", Base.metadata, Column("email", String(200), primary_key=True))
    yield
    Base.metadata.remove(table)


def test_every_table_in_the_schemas_has_a_handler_or_an_exemption(registry: Registry) -> None:
    assert coverage_gaps(registry.handlers) == []
    assert set(schemas.warehouse_tables()) == {
        schema.EVENTS,
        schema.PROFILES,
        schema.PROFILE_PROPS,
        schema.PROFILE_OPS,
        schema.USER_ALIASES,
        schema.ERASURE_LEDGER,
    }


def test_a_new_warehouse_table_without_a_handler_fails(
    registry: Registry, message_log_migration: None
) -> None:
    assert coverage_gaps(registry.handlers) == [
        "warehouse:message_log has no privacy handler and no exemption"
    ]


def test_a_new_control_table_without_a_handler_fails(registry: Registry, subscriptions_table: None) -> None:
    assert coverage_gaps(registry.handlers) == [
        "control:subscriptions has no privacy handler and no exemption"
    ]


class _MessageLogHandler(StoreHandler):
    name = "warehouse.message_log"

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        yield []

    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        return {s.request_id: 0 for s in scopes}

    async def erase(self, scopes: Sequence[Scope]) -> None:
        return None

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        return {s.request_id: Verification(0, False, "nothing") for s in scopes}


def test_a_projection_the_proof_does_not_count_fails(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A projection is a second copy of its table's rows: one the erasure's proof does not know is a gap."""
    extra = Migration(
        version=len(runner.migrations()) + 1,
        name="events_by_name",
        forward=(AddProjection(schema.EVENTS, "events_by_name", ("account_id", "user_key", "name"), "name"),),
        backward=(),
    )
    shipped = runner.migrations()
    monkeypatch.setattr(schemas, "migrations", lambda: (*shipped, extra))
    schemas.warehouse_projections.cache_clear()
    try:
        assert coverage_gaps(registry.handlers) == [
            "warehouse:events projection events_by_name is not counted by the erasure's proof"
        ]
    finally:
        schemas.warehouse_projections.cache_clear()


def test_the_shipped_projection_is_counted_and_holds_every_subject_column(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert schemas.warehouse_projections() == {
        schema.EVENTS_BY_PERSON: (schema.EVENTS, schema.EVENTS_BY_PERSON_COLUMNS)
    }
    # Without one of the columns that name a subject, the table's condition cannot count the copy.
    narrow = tuple(c for c in schema.EVENTS_BY_PERSON_COLUMNS if c != "anonymous_id")
    monkeypatch.setattr(
        registry_module, "warehouse_projections", lambda: {schema.EVENTS_BY_PERSON: (schema.EVENTS, narrow)}
    )
    assert coverage_gaps(registry.handlers) == [
        "warehouse:events projection events_by_person lacks the subject columns ['anonymous_id']"
    ]


def test_other_services_plug_in_their_handlers(registry: Registry, message_log_migration: None) -> None:
    coverage = {"warehouse": {"message_log": "warehouse.message_log"}}
    assert coverage_gaps(registry.handlers, coverage) == [
        "warehouse:message_log names handler 'warehouse.message_log', which is not registered"
    ]
    assert coverage_gaps([*registry.handlers, _MessageLogHandler()], coverage) == []
    assert coverage_gaps(registry.handlers, {"warehouse": {"message_log": Exempt("aggregates only")}}) == []


@pytest.mark.integration
async def test_the_migrated_warehouse_holds_exactly_the_derived_tables(warehouse: Warehouse) -> None:
    rows = await warehouse.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
    assert {row["name"] for row in rows} - {schema.MIGRATIONS} == set(schemas.warehouse_tables())

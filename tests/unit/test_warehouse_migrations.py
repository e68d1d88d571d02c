"""Warehouse migrations without a warehouse: rendering for one node and for a cluster, and runner rules."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from tapwire_core.warehouse import QueryLimits, Warehouse, WarehouseError
from tapwire_core.warehouse.base import Params
from tapwire_core.warehouse.json_insert import JsonInsert
from tapwire_core.warehouse.migrations import (
    AddColumn,
    AddIndex,
    AddProjection,
    BlockingMigrationPending,
    CreateTable,
    DropColumn,
    DropIndex,
    DropProjection,
    DropTable,
    MaterializeIndex,
    MaterializeProjection,
    Migration,
    ModifyColumn,
    ResetTableSettings,
    SetTableSettings,
    Target,
    checksum,
    label,
    migrate,
    migrations,
    plan,
    runner,
)
from tapwire_core.warehouse.schema import EVENT_COLUMNS, EVENTS_BY_PERSON, EVENTS_BY_PERSON_COLUMNS

PUBLIC_TABLES = (
    "events",
    "profile_props",
    "profile_ops",
    "profiles",
    "user_aliases",
    "privacy_erasure_ledger",
)
# The column each table's rows are sharded by, with the account.
SHARDED_BY = {"user_aliases": "alias_key", "privacy_erasure_ledger": "key_hash"}


def creates(statements: list[str]) -> dict[str, str]:
    """CREATE TABLE statements keyed by the (unqualified) table name."""
    found = {}
    for sql in statements:
        matched = re.match(r"CREATE TABLE IF NOT EXISTS \w+\.(\w+)", sql)
        if matched:
            found[matched.group(1)] = sql
    return found


def test_single_node_plan_is_plain_merge_trees_under_public_names() -> None:
    statements = plan(None, database="tw")
    tables = creates(statements)
    assert set(tables) == {*PUBLIC_TABLES, "tapwire_migrations"}
    assert not any("ON CLUSTER" in sql or "Replicated" in sql or "Distributed" in sql for sql in statements)
    assert not any(sql.startswith("CREATE DATABASE") for sql in statements)
    assert "ENGINE = ReplacingMergeTree()\nPARTITION BY toYYYYMM(ts)\n" in tables["events"]
    assert "ORDER BY (account_id, name, toDate(ts), user_key, event_id)" in tables["events"]
    assert "INDEX idx_event_id event_id TYPE bloom_filter" in tables["events"]
    assert "ENGINE = ReplacingMergeTree(ts)\nORDER BY (account_id, user_key, key)" in tables["profile_props"]
    assert "ENGINE = AggregatingMergeTree()\nORDER BY (account_id, user_key)" in tables["profiles"]
    assert "email SimpleAggregateFunction(anyLast, Nullable(String))" in tables["profiles"]
    assert "first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC'))" in tables["profiles"]
    assert "last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC'))" in tables["profiles"]


def test_event_columns_are_exactly_the_loader_contract() -> None:
    events = creates(plan(None, database="tw"))["events"]
    body = events.split("(\n", 1)[1].split("\n)", 1)[0]
    declared = [
        line.strip().rstrip(",") for line in body.splitlines() if not line.strip().startswith("INDEX")
    ]
    assert declared == [f"{name} {kind}" for name, kind in EVENT_COLUMNS]
    assert [name for name, _ in EVENT_COLUMNS] == [
        "account_id", "event_id", "user_key", "identity", "object_id", "email", "phone",
        "anonymous_id", "name", "ts", "received_at", "source", "properties", "context",
    ]  # fmt: skip


def test_cluster_plan_is_replicated_local_tables_behind_distributed_ones() -> None:
    statements = plan("main", database="tw")
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS tw ON CLUSTER main"
    assert all(" ON CLUSTER main" in sql for sql in statements)
    tables = creates(statements)
    assert set(tables) == {*PUBLIC_TABLES, *(f"{t}_local" for t in PUBLIC_TABLES), "tapwire_migrations"}
    for table in PUBLIC_TABLES:
        key_column = SHARDED_BY.get(table, "user_key")
        local = tables[f"{table}_local"]
        assert f"'/clickhouse/tables/{{shard}}/{{database}}/{table}_local', '{{replica}}'" in local
        assert re.search(r"ENGINE = Replicated(Replacing|Aggregating)MergeTree\(", local)
        assert tables[table] == (
            f"CREATE TABLE IF NOT EXISTS tw.{table} ON CLUSTER main AS tw.{table}_local\n"
            f"ENGINE = Distributed(main, tw, {table}_local, cityHash64(account_id, {key_column}))"
        )
        # The local table must exist before the Distributed table that copies its structure.
        assert statements.index(local) < statements.index(tables[table])
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/profile_props_local', "
        "'{replica}', ts)" in tables["profile_props_local"]
    )
    status = tables["tapwire_migrations"]
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/tapwire_migrations'" in status
    assert "tapwire_migrations_local" not in " ".join(statements)


def test_every_statement_is_safe_to_rerun() -> None:
    for cluster in (None, "main"):
        target = Target("tw", cluster)
        for migration in migrations():
            for sql in migration.forward_sql(target):
                # Redefining a column, building an index and dropping one are idempotent by themselves.
                assert any(
                    form in sql
                    for form in (
                        "IF NOT EXISTS",
                        "MODIFY COLUMN IF EXISTS",
                        "MATERIALIZE INDEX IF EXISTS",
                        "DROP INDEX IF EXISTS",
                        "MATERIALIZE PROJECTION IF EXISTS",
                        "MODIFY SETTING",
                    )
                ), sql
            for sql in migration.backward_sql(target):
                # Undoing may also restore what the step replaced (an index it dropped), or a setting's default.
                assert "IF EXISTS" in sql or "IF NOT EXISTS" in sql or "RESET SETTING" in sql, sql


def test_backward_drops_public_then_local_tables() -> None:
    assert DropTable("events").render(Target("tw", "c")) == [
        "DROP TABLE IF EXISTS tw.events ON CLUSTER c SYNC",
        "DROP TABLE IF EXISTS tw.events_local ON CLUSTER c SYNC",
    ]
    assert DropTable("events").render(Target("tw")) == ["DROP TABLE IF EXISTS tw.events SYNC"]


def test_column_changes_reach_storage_and_distributed_tables_in_safe_order() -> None:
    add = AddColumn("events", "country", "LowCardinality(String)", after="source")
    assert add.render(Target("tw", "c")) == [
        "ALTER TABLE tw.events_local ON CLUSTER c ADD COLUMN IF NOT EXISTS country LowCardinality(String) AFTER source",
        "ALTER TABLE tw.events ON CLUSTER c ADD COLUMN IF NOT EXISTS country LowCardinality(String) AFTER source",
    ]
    assert DropColumn("events", "country").render(Target("tw", "c")) == [
        "ALTER TABLE tw.events ON CLUSTER c DROP COLUMN IF EXISTS country",
        "ALTER TABLE tw.events_local ON CLUSTER c DROP COLUMN IF EXISTS country",
    ]
    assert add.render(Target("tw")) == [
        "ALTER TABLE tw.events ADD COLUMN IF NOT EXISTS country LowCardinality(String) AFTER source"
    ]
    # A redefinition reaches storage first, like an addition: the Distributed table never promises more.
    modify = ModifyColumn("events", "country", "LowCardinality(String) DEFAULT 'unknown'")
    assert modify.render(Target("tw", "c")) == [
        "ALTER TABLE tw.events_local ON CLUSTER c MODIFY COLUMN IF EXISTS country LowCardinality(String) DEFAULT 'unknown'",
        "ALTER TABLE tw.events ON CLUSTER c MODIFY COLUMN IF EXISTS country LowCardinality(String) DEFAULT 'unknown'",
    ]
    assert modify.render(Target("tw")) == [
        "ALTER TABLE tw.events MODIFY COLUMN IF EXISTS country LowCardinality(String) DEFAULT 'unknown'"
    ]


def test_skipping_indexes_live_on_the_storage_tables_only() -> None:
    """A Distributed table holds no rows, so an index (and building it) is for the tables under it."""
    add = AddIndex("events", "idx_k", "user_key", "bloom_filter(0.01)", granularity=1)
    assert add.render(Target("tw", "c")) == [
        "ALTER TABLE tw.events_local ON CLUSTER c ADD INDEX IF NOT EXISTS idx_k user_key TYPE bloom_filter(0.01) GRANULARITY 1"
    ]
    assert add.render(Target("tw")) == [
        "ALTER TABLE tw.events ADD INDEX IF NOT EXISTS idx_k user_key TYPE bloom_filter(0.01) GRANULARITY 1"
    ]
    assert MaterializeIndex("events", "idx_k").render(Target("tw", "c")) == [
        "ALTER TABLE tw.events_local ON CLUSTER c MATERIALIZE INDEX IF EXISTS idx_k"
    ]
    assert DropIndex("events", "idx_k").render(Target("tw")) == [
        "ALTER TABLE tw.events DROP INDEX IF EXISTS idx_k"
    ]
    with pytest.raises(WarehouseError):
        AddIndex("events", "idx; DROP", "user_key", "set(0)").render(Target("tw"))


def test_projections_and_table_settings_live_on_the_storage_tables_only() -> None:
    add = AddProjection("events", "by_k", ("account_id", "k"), "(account_id, k)")
    assert add.render(Target("tw", "c")) == [
        "ALTER TABLE tw.events_local ON CLUSTER c ADD PROJECTION IF NOT EXISTS by_k "
        "(SELECT account_id, k ORDER BY (account_id, k))"
    ]
    assert MaterializeProjection("events", "by_k").render(Target("tw")) == [
        "ALTER TABLE tw.events MATERIALIZE PROJECTION IF EXISTS by_k SETTINGS mutations_sync = 0"
    ]
    assert DropProjection("events", "by_k").render(Target("tw", "c")) == [
        "ALTER TABLE tw.events_local ON CLUSTER c DROP PROJECTION IF EXISTS by_k"
    ]
    assert SetTableSettings("events", (("a_mode", "'rebuild'"), ("b", "1"))).render(Target("tw", "c")) == [
        "ALTER TABLE tw.events_local ON CLUSTER c MODIFY SETTING a_mode = 'rebuild', b = 1"
    ]
    assert ResetTableSettings("events", ("a_mode", "b")).render(Target("tw")) == [
        "ALTER TABLE tw.events RESET SETTING a_mode, b"
    ]
    for unsafe in (
        AddProjection("events", "p", ("k; DROP",), "k"),
        AddProjection("events", "p x", ("k",), "k"),
        SetTableSettings("events", (("a = 1, b", "1"),)),
        ResetTableSettings("events", ("a b",)),
    ):
        with pytest.raises(WarehouseError):
            unsafe.render(Target("tw"))


def test_the_person_ordered_projection_holds_every_column_that_names_a_subject() -> None:
    """The erasure's proof counts the projection with the table's own condition on these columns."""
    identifiers = {"user_key", "identity", "object_id", "email", "phone", "anonymous_id"}
    assert identifiers <= set(EVENTS_BY_PERSON_COLUMNS) <= {name for name, _ in EVENT_COLUMNS}
    added = [op for m in migrations() for op in m.forward if isinstance(op, AddProjection)]
    assert [(op.name, op.columns) for op in added] == [(EVENTS_BY_PERSON, EVENTS_BY_PERSON_COLUMNS)]


@pytest.mark.parametrize(("database", "cluster"), [("tw; DROP", None), ("tw", "c' OR 1"), ("", None)])
def test_targets_accept_only_plain_identifiers(database: str, cluster: str | None) -> None:
    with pytest.raises(WarehouseError):
        Target(database, cluster)


def test_versions_labels_and_checksums() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert label(found[0]) == "0001_initial"
    assert not found[0].blocking
    assert checksum(found[0]) == checksum(found[0])
    changed = Migration(1, "initial", forward=found[0].forward[:1], backward=())
    assert checksum(changed) != checksum(found[0])


class RecordingWarehouse(Warehouse):
    """Just enough of a warehouse for the runner: statements are recorded, status rows kept in memory."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.status: list[tuple[Any, ...]] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def command(self, sql: str, params: Params | None = None) -> None:
        self.commands.append(sql)

    async def query(
        self, sql: str, params: Params | None = None, *, limits: QueryLimits | None = None
    ) -> list[dict[str, Any]]:
        if "system.tables" in sql:
            return [{"n": int(any("tapwire_migrations" in c for c in self.commands))}]
        latest: dict[int, tuple[Any, ...]] = {}
        for row in self.status:
            latest[row[0]] = row
        return [
            {"version": v, "name": r[1], "checksum": r[3], "applied": r[4]} for v, r in sorted(latest.items())
        ]

    async def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        assert table == "tapwire_migrations"
        self.status.extend(tuple(row) for row in rows)

    async def insert_json(
        self, statement: JsonInsert, rows: bytes, *, dedup_token: str | None = None
    ) -> None:
        raise AssertionError("the migration runner inserts no JSON rows")

    async def ping(self) -> bool:
        return True

    @property
    def database(self) -> str:
        return "tw"


def _fake_migrations(monkeypatch: pytest.MonkeyPatch, *, second_blocking: bool) -> tuple[Migration, ...]:
    one = Migration(1, "one", forward=(CreateTable("a", (("x", "String"),), "MergeTree", "x"),), backward=())
    two = Migration(2, "two", forward=(AddColumn("a", "y", "String"),), backward=(), blocking=second_blocking)
    monkeypatch.setattr(runner, "migrations", lambda: (one, two))
    return one, two


async def test_blocking_migration_is_not_applied_implicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_migrations(monkeypatch, second_blocking=True)
    warehouse = RecordingWarehouse()
    with pytest.raises(BlockingMigrationPending):
        await migrate(warehouse, cluster=None)
    assert [row[0] for row in warehouse.status] == [1]
    assert not any("ADD COLUMN" in sql for sql in warehouse.commands)
    assert await migrate(warehouse, cluster=None, allow_blocking=True) == ["0002_two"]
    assert [row[0] for row in warehouse.status] == [1, 2]


async def test_runner_skips_applied_and_dry_run_executes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_migrations(monkeypatch, second_blocking=False)
    warehouse = RecordingWarehouse()
    dry = await migrate(warehouse, cluster="c", dry_run=True)
    assert warehouse.commands == [] and warehouse.status == []
    assert dry[0] == "CREATE DATABASE IF NOT EXISTS tw ON CLUSTER c"
    assert await migrate(warehouse, cluster="c") == ["0001_one", "0002_two"]
    assert warehouse.commands == dry
    assert await migrate(warehouse, cluster="c") == []
    assert await migrate(warehouse, cluster="c", dry_run=True) == []


async def test_a_current_schema_is_left_alone_without_any_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every service migrates at start; when the migration job already did, a service sends no DDL at all, so
    one whose ClickHouse account may only read (the query service's) starts too."""
    _fake_migrations(monkeypatch, second_blocking=False)
    warehouse = RecordingWarehouse()
    assert await migrate(warehouse, cluster="c") == ["0001_one", "0002_two"]
    sent = list(warehouse.commands)
    assert await migrate(warehouse, cluster="c") == []
    assert warehouse.commands == sent

"""One behaviour suite for every Warehouse: chDB in-process and ClickHouse over HTTP (the chDB-backed rig)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tapwire_core.warehouse import QueryLimits, Warehouse, WarehouseError, WarehouseUnavailable
from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tapwire_core.warehouse.json_insert import JsonInsert
from tapwire_core.warehouse.migrations import (
    label,
    migrate,
    migrations,
    plan,
    rollback,
    schema_is_current,
    schema_version,
)
from tapwire_core.warehouse.schema import (
    EVENT_COLUMNS,
    EVENT_PROPERTY_NUMBERS,
    EVENT_PROPERTY_STRINGS,
    PROFILE_COLUMNS,
    PROFILE_PROP_COLUMNS,
)
from tests.infra.clickhouse import ENGINES, Engine, WarehouseFactory, running_rig

pytestmark = pytest.mark.integration

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 5, 12, 0, 0, 123000, tzinfo=UTC)
ACCOUNT = "ACC-1"
TRICKY = [
    "plain",
    "it's",
    'say "hi"',
    "back\\slash\\",
    "\\N",
    "line\nbreak\r\n",
    "tab\there",
    "nul\x00byte",
    "ünïcødé ✓ 😀",
    "{x:String}",
    "{account:String}",
    "%(x)s %s",
    "'; DROP TABLE events; --",
    "' OR 1=1 --",
    "",
]
EVENT_NAMES = [name for name, _ in EVENT_COLUMNS]
PROP_NAMES = [name for name, _ in PROFILE_PROP_COLUMNS]
PROFILE_NAMES = [name for name, _ in PROFILE_COLUMNS]


@pytest.fixture(params=ENGINES)
async def warehouse(request: pytest.FixtureRequest, warehouse_factory: WarehouseFactory) -> Warehouse:
    engine: Engine = request.param
    warehouse = await warehouse_factory(engine)
    await migrate(warehouse, cluster=None)
    return warehouse


def event(
    event_id: str, *, user: str = "u1", name: str = "Bought", props: str = "{}", at: dt.datetime = T0
) -> tuple[Any, ...]:
    return (
        ACCOUNT,
        event_id,
        f"i:{user}",
        user,
        "",
        "",
        "",
        "",
        name,
        at,
        at + dt.timedelta(seconds=1),
        "clevertap",
        props,
        "",
    )


async def test_migrations_apply_once_and_rerun_as_no_op(warehouse: Warehouse) -> None:
    assert await schema_version(warehouse) == len(migrations())
    assert await schema_is_current(warehouse)
    assert await migrate(warehouse, cluster=None) == []
    assert await migrate(warehouse, cluster=None, dry_run=True) == []
    tables = await warehouse.query(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name"
    )
    assert {row["name"]: row["engine"] for row in tables} == {
        "events": "ReplacingMergeTree",
        "profile_ops": "ReplacingMergeTree",
        "profile_props": "ReplacingMergeTree",
        "profiles": "AggregatingMergeTree",
        "privacy_erasure_ledger": "ReplacingMergeTree",
        "tapwire_migrations": "ReplacingMergeTree",
        "user_aliases": "ReplacingMergeTree",
    }
    columns = await warehouse.query(
        "SELECT name, type, default_kind FROM system.columns WHERE database = currentDatabase() "
        "AND table = 'events' ORDER BY position"
    )
    assert [(row["name"], row["type"]) for row in columns if row["default_kind"] != "MATERIALIZED"] == [
        (name, kind.replace(", ", ",").replace(",", ", ")) for name, kind in EVENT_COLUMNS
    ]
    # Computed on insert for queries; the loader never writes them.
    assert [(row["name"], row["type"]) for row in columns if row["default_kind"] == "MATERIALIZED"] == [
        (EVENT_PROPERTY_STRINGS, "Map(String, String)"),
        (EVENT_PROPERTY_NUMBERS, "Map(String, Float64)"),
    ]


async def test_fresh_database_reports_version_zero_and_dry_run_lists_everything(
    warehouse_factory: WarehouseFactory,
) -> None:
    for engine in ENGINES:
        empty = await warehouse_factory(engine)
        assert await schema_version(empty) == 0
        assert not await schema_is_current(empty)
        assert await migrate(empty, cluster=None, dry_run=True) == plan(None, database=empty.database)
        assert await schema_version(empty) == 0, "a dry run must not change anything"


async def test_half_applied_migration_reruns_cleanly(warehouse: Warehouse) -> None:
    await rollback(warehouse, cluster=None, to_version=0)
    assert await schema_version(warehouse) == 0
    # A crash after the first table was created but before the status row was written.
    first_statements = plan(None, database=warehouse.database)
    for statement in first_statements[:2]:
        await warehouse.command(statement)
    assert await migrate(warehouse, cluster=None) == [label(m) for m in migrations()]
    assert await schema_is_current(warehouse)


async def test_tricky_values_round_trip_as_bound_parameters(warehouse: Warehouse) -> None:
    rows = [event(f"e{i}", user=value, props=value) for i, value in enumerate(TRICKY)]
    await warehouse.insert("events", EVENT_NAMES, rows)
    for i, value in enumerate(TRICKY):
        got = await warehouse.query(
            "SELECT event_id, identity, properties, {echo:String} AS echo FROM events "
            "WHERE account_id = {account:String} AND identity = {value:String}",
            {"account": ACCOUNT, "value": value, "echo": value},
        )
        assert got == [{"event_id": f"e{i}", "identity": value, "properties": value, "echo": value}], value
    total = await warehouse.query("SELECT count() AS n FROM events")
    assert total == [{"n": len(TRICKY)}]


async def test_typed_results(warehouse: Warehouse) -> None:
    await warehouse.insert("events", EVENT_NAMES, [event("e1")])
    got = await warehouse.query(
        "SELECT ts, received_at, toUnixTimestamp64Milli(ts) AS ms, count() OVER () AS n, "
        "{day:Date} AS day, {nothing:Nullable(String)} AS nothing FROM events",
        {"day": dt.date(2026, 1, 5), "nothing": None},
    )
    assert got == [
        {
            "ts": T0,
            "received_at": T0 + dt.timedelta(seconds=1),
            "ms": int(T0.timestamp() * 1000),
            "n": 1,
            "day": dt.date(2026, 1, 5),
            "nothing": None,
        }
    ]
    assert got[0]["ts"].tzinfo is not None


async def test_redelivered_event_is_one_row_with_final(warehouse: Warehouse) -> None:
    await warehouse.insert("events", EVENT_NAMES, [event("dup"), event("other")], dedup_token="batch-1")
    await warehouse.insert("events", EVENT_NAMES, [event("dup")], dedup_token="batch-2")
    raw = await warehouse.query("SELECT count() AS n FROM events WHERE event_id = {id:String}", {"id": "dup"})
    final = await warehouse.query(
        "SELECT count() AS n FROM events FINAL WHERE event_id = {id:String}", {"id": "dup"}
    )
    assert raw == [{"n": 2}]
    assert final == [{"n": 1}]


async def test_profile_property_latest_ts_wins(warehouse: Warehouse) -> None:
    later, earlier = T0 + dt.timedelta(minutes=5), T0
    await warehouse.insert("profile_props", PROP_NAMES, [(ACCOUNT, "u1", "Tier", '"gold"', later, 0)])
    await warehouse.insert("profile_props", PROP_NAMES, [(ACCOUNT, "u1", "Tier", '"bronze"', earlier, 0)])
    await warehouse.insert("profile_props", PROP_NAMES, [(ACCOUNT, "u1", "Gone", '"x"', earlier, 0)])
    await warehouse.insert("profile_props", PROP_NAMES, [(ACCOUNT, "u1", "Gone", "null", later, 1)])
    got = await warehouse.query(
        "SELECT key, value, deleted FROM profile_props FINAL WHERE account_id = {a:String} AND user_key = {u:String} "
        "ORDER BY key",
        {"a": ACCOUNT, "u": "u1"},
    )
    assert got == [
        {"key": "Gone", "value": "null", "deleted": 1},
        {"key": "Tier", "value": '"gold"', "deleted": 0},
    ]


async def test_profiles_keep_first_last_seen_and_last_non_null_identifier(warehouse: Warehouse) -> None:
    def row(email: str | None, first: dt.datetime, last: dt.datetime) -> tuple[Any, ...]:
        return (ACCOUNT, "u1", "u1", None, email, None, None, first, last)

    t1, t2, t3 = T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)
    await warehouse.insert("profiles", PROFILE_NAMES, [row("old@example.com", t2, t2)])
    await warehouse.insert("profiles", PROFILE_NAMES, [row("new@example.com", t1, t2)])
    await warehouse.insert("profiles", PROFILE_NAMES, [row(None, t2, t3)])
    got = await warehouse.query(
        "SELECT identity, email, object_id, first_seen, last_seen FROM profiles FINAL "
        "WHERE account_id = {a:String} AND user_key = {u:String}",
        {"a": ACCOUNT, "u": "u1"},
    )
    assert got == [
        {"identity": "u1", "email": "new@example.com", "object_id": None, "first_seen": t1, "last_seen": t3}
    ]
    await warehouse.command("OPTIMIZE TABLE profiles FINAL")
    merged = await warehouse.query("SELECT email, first_seen, last_seen FROM profiles")
    assert merged == [{"email": "new@example.com", "first_seen": t1, "last_seen": t3}]


async def test_large_batch_arrives_whole(warehouse: Warehouse) -> None:
    # Large enough that clients split it into several blocks (and compressed frames) on the wire.
    rows = [event(f"big-{i}", user=f"u{i % 977}", props=f'{{"n":{i}}}') for i in range(60_000)]
    await warehouse.insert("events", EVENT_NAMES, rows, dedup_token="big")
    got = await warehouse.query(
        "SELECT count() AS n, uniqExact(event_id) AS ids, uniqExact(user_key) AS users FROM events FINAL"
    )
    assert got == [{"n": 60_000, "ids": 60_000, "users": 977}]


async def test_columns_insert_stores_what_rows_insert_stores(warehouse: Warehouse) -> None:
    # The loader's shape: one list per column, timestamps as epoch-millisecond ticks, NULLs in profiles.
    ms = int(T0.timestamp() * 1000)
    rows = [event(f"e{i}", user=value, props=value) for i, value in enumerate(TRICKY)]
    columns = [list(values) for values in zip(*rows, strict=True)]
    columns[EVENT_NAMES.index("ts")] = [ms + i for i in range(len(rows))]
    await warehouse.insert_columns("events", EVENT_NAMES, columns, dedup_token="columns")
    got = await warehouse.query("SELECT event_id, identity, properties, name, ts FROM events ORDER BY ts")
    assert got == [
        {
            "event_id": f"e{i}",
            "identity": value,
            "properties": value,
            "name": "Bought",
            "ts": T0 + dt.timedelta(milliseconds=i),
        }
        for i, value in enumerate(TRICKY)
    ]
    profile: list[list[object]] = [
        [ACCOUNT, ACCOUNT],
        ["u1", "u2"],
        ["u1", None],
        [None, None],
        [None, "b@x"],
        [None, None],
    ]
    profile += [[None, None], [ms, ms], [ms + 5, ms + 5]]
    await warehouse.insert_columns("profiles", PROFILE_NAMES, profile)
    got = await warehouse.query(
        "SELECT user_key, identity, email, last_seen FROM profiles FINAL ORDER BY user_key"
    )
    last = T0 + dt.timedelta(milliseconds=5)
    assert got == [
        {"user_key": "u1", "identity": "u1", "email": None, "last_seen": last},
        {"user_key": "u2", "identity": None, "email": "b@x", "last_seen": last},
    ]


async def test_columns_that_do_not_line_up_raise_warehouse_error(warehouse: Warehouse) -> None:
    await warehouse.insert_columns("events", EVENT_NAMES, [[] for _ in EVENT_NAMES])
    columns = [list(values) for values in zip(event("e1"), event("e2"), strict=True)]
    with pytest.raises(WarehouseError):
        await warehouse.insert_columns("events", EVENT_NAMES, columns[:-1])
    with pytest.raises(WarehouseError):
        await warehouse.insert_columns("events", EVENT_NAMES, [*columns[:-1], columns[-1][:1]])
    assert await warehouse.query("SELECT count() AS n FROM events") == [{"n": 0}]


async def test_empty_insert_is_a_no_op(warehouse: Warehouse) -> None:
    await warehouse.insert("events", EVENT_NAMES, [])
    assert await warehouse.query("SELECT count() AS n FROM events") == [{"n": 0}]


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT nosuch_function()", None),
        ("SELECT * FROM no_such_table", None),
        ("SELEKT 1", None),
        ("SELECT {n:UInt8} AS n", {"n": "not a number"}),
    ],
)
async def test_bad_statements_raise_warehouse_error(
    warehouse: Warehouse, sql: str, params: dict[str, Any] | None
) -> None:
    with pytest.raises(WarehouseError) as raised:
        await warehouse.query(sql, params)
    assert not isinstance(raised.value, WarehouseUnavailable)
    assert await warehouse.ping()


async def test_parameters_are_never_formatted_into_sql(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError, match="placeholder"):
        await warehouse.query("SELECT %(x)s AS x", {"x": "1"})
    with pytest.raises(WarehouseError, match="placeholder"):
        await warehouse.command("SELECT 1", {"x": "1"})


async def test_rows_that_do_not_fit_raise_warehouse_error(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError):
        await warehouse.insert("events", EVENT_NAMES, [event("e1")[:-1]])
    with pytest.raises(WarehouseError):
        await warehouse.insert("profile_props", PROP_NAMES, [(ACCOUNT, "u1", "k", "1", "not a time", 0)])
    with pytest.raises(WarehouseError):
        await warehouse.insert("events", ["no_such_column"], [("x",)])
    assert await warehouse.query("SELECT count() AS n FROM events") == [{"n": 0}]


# A table of its own: the JSON path is the warehouse's, not the events table's (the loader's use of it is
# tested with the loader).
_JSON_TABLE = "json_rows_probe"
_JSON_INSERT = JsonInsert(
    table=_JSON_TABLE,
    columns=("id", "who", "doc", "at"),
    expressions=("id", "ifNull(person.name, '?')", "doc", "fromUnixTimestamp64Milli(ms, 'UTC')"),
    structure="id String, person Tuple(name Nullable(String), age Nullable(Int64)), doc String, ms Int64",
)


async def _json_table(warehouse: Warehouse) -> None:
    await warehouse.command(
        f"CREATE TABLE {_JSON_TABLE} (id String, who String, doc String, at DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY id"
    )


async def test_json_rows_are_computed_by_the_statement(warehouse: Warehouse) -> None:
    await _json_table(warehouse)
    ms = int(T0.timestamp() * 1000)
    rows = [
        {"id": f"r{i}", "person": {"name": value}, "doc": {"v": value, "n": [1, 2.5]}, "ms": ms + i}
        for i, value in enumerate(TRICKY)
    ]
    # A missing tuple member is NULL, a null object is '', and a field the statement does not read is skipped.
    rows.append({"id": "bare", "person": {"age": 3}, "doc": None, "ms": ms, "later": {"x": 1}})
    await warehouse.insert_json(_JSON_INSERT, orjson.dumps(rows), dedup_token="json")
    got = await warehouse.query(f"SELECT id, who, doc, at FROM {_JSON_TABLE} ORDER BY at, id")
    expected = [
        {
            "id": f"r{i}",
            "who": value,
            "doc": orjson.dumps({"v": value, "n": [1, 2.5]}).decode(),
            "at": T0 + dt.timedelta(milliseconds=i),
        }
        for i, value in enumerate(TRICKY)
    ]
    expected.insert(0, {"id": "bare", "who": "?", "doc": "", "at": T0})
    assert got == expected


async def test_json_rows_also_arrive_as_objects_one_after_another(warehouse: Warehouse) -> None:
    await _json_table(warehouse)
    lines = b"\n".join(orjson.dumps({"id": f"r{i}", "person": {}, "doc": {}, "ms": i}) for i in range(3))
    await warehouse.insert_json(_JSON_INSERT, lines)
    await warehouse.insert_json(_JSON_INSERT, b"[]")
    assert await warehouse.query(f"SELECT count() AS n FROM {_JSON_TABLE}") == [{"n": 3}]


@pytest.mark.parametrize(
    "rows",
    [
        b'[{"id": "a", "person": {}, "doc": {}, "ms": 1}, {"id": "b", "person": {}, "doc": {}, "ms": "soon"}]',
        b'[{"id": "a", "person": {}, "doc": {}, "ms": 1}, {"id": "b", "person"',
        b"not json at all",
    ],
)
async def test_json_rows_that_do_not_parse_insert_nothing(warehouse: Warehouse, rows: bytes) -> None:
    await _json_table(warehouse)
    with pytest.raises(WarehouseError) as raised:
        await warehouse.insert_json(_JSON_INSERT, rows)
    assert not isinstance(raised.value, WarehouseUnavailable)
    assert await warehouse.query(f"SELECT count() AS n FROM {_JSON_TABLE}") == [{"n": 0}]
    assert await warehouse.ping()


def test_json_statements_take_no_quoted_structure() -> None:
    with pytest.raises(WarehouseError):
        JsonInsert(table="t", columns=("a",), expressions=("a",), structure="a String') --")
    with pytest.raises(WarehouseError):
        JsonInsert(table="t", columns=("a", "b"), expressions=("a",), structure="a String")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_closed_port_is_unavailable_quickly() -> None:
    warehouse = ClickHouseWarehouse(
        f"http://default:@127.0.0.1:{_closed_port()}/tapwire", connect_timeout_s=2
    )
    started = time.monotonic()
    with pytest.raises(WarehouseUnavailable):
        await warehouse.start()
    assert time.monotonic() - started < 3
    assert not await warehouse.ping()
    await warehouse.close()


async def test_server_gone_after_start_is_unavailable(tmp_path: Path) -> None:
    with running_rig(tmp_path) as url:
        warehouse = ClickHouseWarehouse(f"{url}/gone", connect_timeout_s=2)
        await warehouse.start()
        assert await warehouse.ping()
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseUnavailable):
            await warehouse.query("SELECT 1 AS one")
        assert time.monotonic() - started < 3
        assert not await warehouse.ping()
    finally:
        await warehouse.close()


LOOSE = QueryLimits(max_execution_s=60, max_memory_bytes=4 * 1024**3, max_rows_to_read=10**12)


async def test_a_read_past_its_row_limit_fails_naming_it(warehouse: Warehouse) -> None:
    limits = dataclasses.replace(LOOSE, max_rows_to_read=1000)
    assert await warehouse.query("SELECT count() AS n FROM numbers(1000)", limits=limits) == [{"n": 1000}]
    with pytest.raises(WarehouseError) as refused:
        await warehouse.query("SELECT count() AS n FROM numbers(100000)", limits=limits)
    assert refused.value.code == 158 and "max_rows_to_read" in str(refused.value)


async def test_a_read_past_its_time_limit_stops(warehouse: Warehouse) -> None:
    limits = dataclasses.replace(LOOSE, max_execution_s=1)
    started = time.monotonic()
    with pytest.raises(WarehouseError) as refused:
        await warehouse.query("SELECT count() AS n FROM numbers_mt(100000000000)", limits=limits)
    assert refused.value.code == 159
    assert time.monotonic() - started < 30  # the statement itself would read 10^11 rows


async def test_a_read_past_its_memory_limit_fails_naming_it(warehouse: Warehouse) -> None:
    limits = dataclasses.replace(LOOSE, max_memory_bytes=20 * 1024**2)
    with pytest.raises(WarehouseError) as refused:
        await warehouse.query(
            "SELECT count() AS n FROM (SELECT groupArray(number) AS all_of_them FROM numbers(10000000))",
            limits=limits,
        )
    message = str(refused.value)
    assert refused.value.code == 241 and ("(for query)" in message or "Query memory limit" in message)


async def test_a_limited_read_cannot_write(warehouse: Warehouse) -> None:
    with pytest.raises(WarehouseError) as refused:
        await warehouse.query("CREATE TABLE written_by_a_reader (a UInt8) ENGINE = Memory", limits=LOOSE)
    assert refused.value.code == 164
    assert await warehouse.query(
        "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'written_by_a_reader'"
    ) == [{"n": 0}]
    # The refusal stays with that statement: the engine (one session in chDB) still takes writes.
    await warehouse.command("CREATE TABLE written_after_a_reader (a UInt8) ENGINE = Memory")


async def test_a_cancelled_read_is_killed_on_the_server(tmp_path: Path) -> None:
    """The caller gives up on a statement still running on ClickHouse (a slow one, in the rig): the
    statement is killed by its query id, and the server is free for the next one at once."""
    with running_rig(tmp_path, slow={"takes a while": 60}) as url:
        warehouse = ClickHouseWarehouse(f"{url}/slow")
        await warehouse.start()
        try:
            reading = asyncio.ensure_future(
                warehouse.query("SELECT {marker:String} AS marker", {"marker": "takes a while"}, limits=LOOSE)
            )
            await asyncio.sleep(0.5)
            assert not reading.done()
            reading.cancel()
            killed = await _rig_killed(url, count=1)
            assert len(killed) == 1
            started = time.monotonic()
            assert await warehouse.query("SELECT 1 AS one") == [{"one": 1}]
            assert time.monotonic() - started < 5
        finally:
            await warehouse.close()


async def _rig_killed(url: str, *, count: int, timeout_s: float = 10) -> list[str]:
    """The query ids the rig has stopped, once there are ``count`` of them (or the timeout passed)."""
    address = url.split("@", 1)[1]
    deadline = time.monotonic() + timeout_s
    while True:
        async with httpx.AsyncClient() as client:
            killed: list[str] = (await client.get(f"http://{address}/rig/killed")).json()
        if len(killed) >= count or time.monotonic() > deadline:
            return killed
        await asyncio.sleep(0.05)

"""The console's reads in the query service — activity, schema, latest events, finding a profile, its
timeline and identity, funnels, retention — on both warehouse paths, against counts made by hand."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tapwire_core.control.store import ControlStore
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse, schema
from tapwire_core.warehouse.migrations import migrate, rollback
from tapwire_query import insight_routes
from tapwire_query.insight_routes import timeline_statement
from tapwire_query.profile_batch import event_summary_statement, profile_records
from tapwire_query.routes import router as query_router
from tapwire_services import generate
from tapwire_services.accounts import directory_for
from tapwire_services.export_client import export_all
from tests.credentials import LOOKUP_DIGESTS
from tests.infra.clickhouse import ENGINES, Engine, WarehouseFactory

pytestmark = pytest.mark.integration

ACCOUNT = "ACC-INSIGHT"
NOISE = "ACC-INSIGHT-NOISE"
PASSCODE = "insight-passcode-123"
LIVE = "ACC-INSIGHT-LIVE"
DAY = 86_400
JAN_5 = int(dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC).timestamp())


def _event(who: str, name: str, ts: int, **props: Any) -> dict[str, Any]:
    return {"type": "event", "identity": who, "ts": ts, "evtName": name, "evtData": props}


# ann: viewed, carted, bought on Jan 5 and came back on Jan 6; bob: viewed on Jan 5 and Jan 7 (under a second key,
# merged into bob); cy: carted only, Jan 6; dee: a push token.
RECORDS: list[dict[str, Any]] = [
    {
        "type": "profile",
        "identity": "ann",
        "ts": JAN_5,
        "profileData": {"Email": "Ann@Example.com", "Phone": "+351910000001"},
    },
    {"type": "profile", "identity": "bob", "ts": JAN_5, "profileData": {"Email": "bob@example.com"}},
    _event("ann", "Viewed", JAN_5, sku="B-1", price=9.5),
    _event("ann", "Carted", JAN_5 + 60, sku="B-1"),
    _event("ann", "Bought", JAN_5 + 120, amount=9.5, gift=True),
    _event("ann", "Viewed", JAN_5 + DAY, sku="B-2", price=3),
    _event("bob", "Viewed", JAN_5, sku="B-3"),
    _event("bob-phone", "Viewed", JAN_5 + 2 * DAY, sku="B-4"),
    _event("cy", "Carted", JAN_5 + DAY, sku="B-5"),
    _event("dee", "__push_token", JAN_5, id="fcm-token-0000-ABCDEFGH", type="FCM"),
]


async def _ready() -> dict[str, bool]:
    return {"test": True}


@pytest.fixture(scope="module")
async def app(loaded: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    await generate.load(loaded, RECORDS, account_id=ACCOUNT, received_ms=1_770_000_000_000)
    # Another tenant with the same names and identities: nothing of it may show.
    await generate.load(loaded, RECORDS * 3, account_id=NOISE, received_ms=1_770_000_000_000)
    columns = [name for name, _ in schema.USER_ALIAS_COLUMNS]
    merged = dt.datetime(2026, 1, 4, tzinfo=dt.UTC)
    await loaded.insert(schema.USER_ALIASES, columns, [(ACCOUNT, "i:bob-phone", "i:bob", merged, 1, 1)])
    path: Path = tmp_path_factory.mktemp("insights") / "control.db"
    store = ControlStore(f"sqlite+aiosqlite:///{path}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    await store.upsert_account(ACCOUNT, passcode=PASSCODE, write_key="insight-wk-1234567", region="eu1")
    await store.upsert_account(LIVE, passcode=PASSCODE, write_key="insight-wk-live-1234567", region="eu1")
    context = ServiceContext(
        settings=Settings(),
        authenticator=directory_for(store),
        readiness=_ready,
        warehouse_=loaded,
        store_=store,
    )
    yield create_app(context, [query_router])
    await store.close()


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://query", headers=headers, timeout=120
    ) as http:
        yield http


async def test_activity_counts_events_and_merged_people_per_day(client: httpx.AsyncClient) -> None:
    body = (await client.get("/query/v1/activity", params={"from": "20260104", "to": "20260108"})).json()
    days = {d["date"]: (d["events"], d["users"]) for d in body["days"]}
    # Jan 5: ann x3, bob, dee's token; Jan 6: ann, cy; Jan 7: bob (as bob-phone, one person with bob).
    assert days == {
        "20260104": (0, 0),
        "20260105": (5, 3),
        "20260106": (2, 2),
        "20260107": (1, 1),
        "20260108": (0, 0),
    }
    assert body["top_events"][0] == {"name": "Viewed", "events": 4}
    assert body["last_5_minutes"] == {"events": 0, "users": 0}


async def test_schema_lists_names_volumes_and_typed_properties(client: httpx.AsyncClient) -> None:
    body = (await client.get("/query/v1/schema", params={"from": "20260101", "to": "20260131"})).json()
    events = {e["name"]: e for e in body["events"]}
    assert events["Viewed"]["events"] == 4
    props = {(p["name"], p["type"]): p["events"] for p in events["Viewed"]["properties"]}
    assert props == {("sku", "string"): 4, ("price", "number"): 2}
    bought = {(p["name"], p["type"]) for p in events["Bought"]["properties"]}
    assert bought == {("amount", "number"), ("gift", "string")}  # booleans are strings "True"/"False"


async def test_latest_events_filter_by_name_and_identity(client: httpx.AsyncClient) -> None:
    # The window is the last 7 days: nothing of January shows.
    assert (await client.get("/query/v1/events/latest")).json()["events"] == []


async def test_find_profile_and_its_timeline_and_identity(client: httpx.AsyncClient) -> None:
    found = (await client.get("/query/v1/profiles/find", params={"q": "ann@example.com"})).json()["profiles"]
    assert [p["user_key"] for p in found] == ["i:ann"]
    assert (await client.get("/query/v1/profiles/find", params={"q": "+351910000001"})).json()["profiles"][0][
        "identity"
    ] == "ann"
    first = (await client.get("/query/v1/profiles/i:ann/timeline", params={"limit": 3})).json()
    assert [e["name"] for e in first["events"]] == ["Viewed", "Bought", "Carted"]
    rest = (
        await client.get(
            "/query/v1/profiles/i:ann/timeline", params={"limit": 3, "before_ms": first["next_before_ms"]}
        )
    ).json()
    assert [e["name"] for e in rest["events"]] == ["Viewed"] and rest["next_before_ms"] is None
    bob = (await client.get("/query/v1/profiles/i:bob/timeline")).json()["events"]
    assert sorted(e["user_key"] for e in bob) == ["i:bob", "i:bob-phone"]  # merged keys count as the person
    identity = (await client.get("/query/v1/profiles/i:bob-phone/identity")).json()
    assert sorted(identity["user_keys"]) == ["i:bob", "i:bob-phone"] and identity["devices"] == []
    dee = (await client.get("/query/v1/profiles/i:dee/identity")).json()
    assert [(d["kind"], d["token_tail"]) for d in dee["devices"]] == [("fcm", "ABCDEFGH")]


async def test_funnel_and_retention(client: httpx.AsyncClient) -> None:
    window = {"from": "20260101", "to": "20260131"}
    funnel = (
        await client.post(
            "/query/v1/funnel",
            json={"steps": ["Viewed", "Carted", "Bought"], "within_seconds": 3600, **window},
        )
    ).json()
    assert [(s["people"], s["from_previous"]) for s in funnel["steps"]] == [(2, 1.0), (1, 0.5), (1, 1.0)]
    retention = (
        await client.post(
            "/query/v1/retention",
            json={"first_event": "Viewed", "return_event": "Viewed", "periods": 3, **window},
        )
    ).json()
    assert retention["cohorts"] == [
        {"cohort": "20260105", "people": 2, "returned": [2, 1, 1, 0], "rates": [1.0, 0.5, 0.5, 0.0]}
    ]


async def test_bad_windows_are_refused_with_the_field(client: httpx.AsyncClient) -> None:
    backwards = await client.get("/query/v1/activity", params={"from": "20260110", "to": "20260101"})
    assert backwards.status_code == 422 and backwards.json()["error"].startswith("from")
    assert (await client.get("/query/v1/activity", params={"to": "Jan 5"})).status_code == 400
    too_long = await client.get("/query/v1/schema", params={"from": "20250101", "to": "20260101"})
    assert too_long.status_code == 422
    assert (await client.post("/query/v1/funnel", json={"steps": ["Viewed"]})).status_code == 422


def _read_step(plan: list[dict[str, Any]]) -> tuple[str, int, int]:
    """What an ``EXPLAIN indexes = 1`` plan reads: the table or projection, and its primary key's granules
    (read, of all)."""
    text = "\n".join(str(next(iter(row.values()))) for row in plan)
    source = re.search(r"ReadFromMergeTree \(([\w.]+)\)", text)
    granules = re.search(r"PrimaryKey\n.*?Granules: (\d+)/(\d+)", text, re.S)
    assert source is not None and granules is not None, text
    return source[1], int(granules[1]), int(granules[2])


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_persons_events_are_read_from_the_person_ordered_projection(
    engine: Engine, warehouse_factory: WarehouseFactory
) -> None:
    """Events are ordered by name and day, so a person active every day is in every granule of the account and
    no skipping index helps; the profile page's timeline and event summary read the projection ordered by
    person instead, where that person is one range."""
    warehouse = await warehouse_factory(engine)
    await migrate(warehouse, cluster=None)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    # 30 days x 300 people x 8 events (about nine granules of 8,192 rows), and one person on every day.
    rows = [
        (
            "ACC-MANY", f"e-{day}-{person}-{n}", f"i:p{day:02d}{person:03d}", f"p{day:02d}{person:03d}",
            "", "", "", "", "Viewed", start + dt.timedelta(days=day, minutes=person * 8 + n),
            start, "clevertap", "{}", "",
        )
        for day in range(30) for person in range(300) for n in range(8)
    ] + [
        (
            "ACC-MANY", f"e-daily-{day}", "i:daily", "daily", "", "", "", "", "Viewed",
            start + dt.timedelta(days=day, hours=23), start, "clevertap", "{}", "",
        )
        for day in range(30)
    ]  # fmt: skip
    await warehouse.insert(schema.EVENTS, [name for name, _ in schema.EVENT_COLUMNS], rows)
    timeline = timeline_statement(
        account_id="ACC-MANY", user_key="i:daily", before_ms=2_000_000_000_000, limit=50
    )
    found = await warehouse.query(timeline.sql, timeline.params)
    assert [r["event_id"] for r in found] == [f"e-daily-{day}" for day in reversed(range(30))]
    summary = event_summary_statement(account_id="ACC-MANY", user_keys=["i:daily"])
    assert [(r["name"], r["count"]) for r in await warehouse.query(summary.sql, summary.params)] == [
        ("Viewed", 30)
    ]
    for statement in (timeline, summary):
        plan = await warehouse.query(f"EXPLAIN indexes = 1 {statement.sql}", statement.params)
        source, read, total = _read_step(plan)
        assert source == schema.EVENTS_BY_PERSON and read == 1 and total >= 8, plan
        # The table itself would read every granule: the person is in all of them.
        table_plan = await warehouse.query(
            f"EXPLAIN indexes = 1 {statement.sql} SETTINGS optimize_use_projections = 0", statement.params
        )
        text = "\n".join(str(next(iter(row.values()))) for row in table_plan)
        skipped = re.search(r"Name: idx_user_key_granule\n.*?Granules: (\d+)/(\d+)", text, re.S)
        assert skipped is not None and skipped[1] == skipped[2], text


@pytest.mark.parametrize("engine", ENGINES)
async def test_an_upgraded_install_builds_the_projection_for_its_parts_in_the_background(
    engine: Engine, warehouse_factory: WarehouseFactory
) -> None:
    """Parts written before migration 7 get the person-ordered copy from a background mutation; the migration
    itself returns without waiting for it, and answers are the same before and after."""
    warehouse = await warehouse_factory(engine)
    await migrate(warehouse, cluster=None)
    await rollback(warehouse, cluster=None, to_version=6)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for day in range(3):  # three inserts, three parts without the projection
        rows = [
            (
                "ACC-OLD", f"e-{day}-{n}", f"i:p{n % 7}", "", "", "", "", "", "Viewed",
                start + dt.timedelta(days=day, minutes=n), start, "clevertap", "{}", "",
            )
            for n in range(50)
        ]  # fmt: skip
        await warehouse.insert(schema.EVENTS, [name for name, _ in schema.EVENT_COLUMNS], rows)
    timeline = timeline_statement(
        account_id="ACC-OLD", user_key="i:p3", before_ms=2_000_000_000_000, limit=50
    )
    before = await warehouse.query(timeline.sql, timeline.params)
    assert len(before) == 21

    async def builds() -> int:
        rows = await warehouse.query(
            "SELECT count() AS n FROM system.mutations WHERE database = currentDatabase() AND table = 'events' "
            "AND command LIKE '%MATERIALIZE PROJECTION%'"
        )
        return int(rows[0]["n"])

    earlier = await builds()
    assert await migrate(warehouse, cluster=None) == ["0007_events_by_person"]
    assert await builds() == earlier + 1

    async def parts_with_the_copy() -> tuple[int, int]:
        rows = await warehouse.query(
            "SELECT count() AS parts, countIf(has(projections, {p:String})) AS with_copy FROM system.parts "
            "WHERE database = currentDatabase() AND table = 'events' AND active",
            {"p": schema.EVENTS_BY_PERSON},
        )
        return int(rows[0]["parts"]), int(rows[0]["with_copy"])

    counted = await parts_with_the_copy()
    for _ in range(600):  # the build runs in the background: up to a minute
        if counted[1] == counted[0]:
            break
        await asyncio.sleep(0.1)
        counted = await parts_with_the_copy()
    assert counted[0] >= 1 and counted[1] == counted[0], counted
    assert await warehouse.query(timeline.sql, timeline.params) == before
    copied = await warehouse.query(
        f"SELECT count() AS n FROM mergeTreeProjection(currentDatabase(), events, {schema.EVENTS_BY_PERSON})"
    )
    assert int(copied[0]["n"]) == 150


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_redelivered_event_counts_once_in_the_profile_record(
    engine: Engine, warehouse_factory: WarehouseFactory
) -> None:
    """The record's event summary counts what deduplication keeps, also while the copies sit in unmerged parts."""
    warehouse = await warehouse_factory(engine)
    await migrate(warehouse, cluster=None)
    records = [*RECORDS[:1], _event("ann", "Viewed", JAN_5), _event("ann", "Viewed", JAN_5 + DAY)]
    for _ in range(2):  # the same upload delivered twice: the same event ids, in two parts
        await generate.load(warehouse, records, account_id=ACCOUNT, received_ms=1_770_000_000_000)
    stored = await warehouse.query("SELECT count() AS n FROM events WHERE name = 'Viewed'")
    assert stored[0]["n"] == 4
    record = (await profile_records(warehouse, account_id=ACCOUNT, canonical=["i:ann"]))["i:ann"]
    assert record["events"]["Viewed"] == {"count": 2, "first_seen": JAN_5, "last_seen": JAN_5 + DAY}


async def test_tapwire_export_writes_every_record_of_a_query_page_by_page(app: FastAPI) -> None:
    out = io.BytesIO()
    summary = await export_all(
        "events",
        {"event_name": "Viewed", "from": 20260101, "to": 20260131},
        url="http://query",
        account=ACCOUNT,
        passcode=PASSCODE,
        out=out,
        batch_size=2,
        progress=False,
        transport=httpx.ASGITransport(app=app),
    )
    exported = [orjson.loads(line) for line in out.getvalue().splitlines()]
    # ann twice, bob, and bob's merged phone key; nothing of the other tenant.
    assert len(exported) == summary.records == 4 and summary.pages >= 2
    assert all(record["event_name"] == "Viewed" for record in exported)
    assert "exported 4 events in" in summary.line()


async def test_activity_reuses_ended_days_and_reads_today_afresh(
    app: FastAPI, loaded: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Days before today are read once per ``CLOSED_DAYS_TTL_S``; today and the last five minutes every time."""
    # One process serves one warehouse; here both paths run in one process, so each starts without reuse.
    monkeypatch.setattr(insight_routes, "_closed_days", {})
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    earlier = int(today.timestamp()) - 3600  # yesterday, 23:00
    just_now = max(int(time.time()) - 60, int(today.timestamp()))

    async def arrive(*records: tuple[str, str, int]) -> None:
        await generate.load(
            loaded,
            [{**_event(who, name, ts), "evtId": f"{who}-{name}-{ts}"} for who, name, ts in records],
            account_id=LIVE,
            received_ms=1_770_000_000_000,
        )

    async def overview() -> dict[str, Any]:
        headers = {"X-CleverTap-Account-Id": LIVE, "X-CleverTap-Passcode": PASSCODE}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://query", headers=headers
        ) as http:
            answer = await http.get("/query/v1/activity")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def last_two_days(body: dict[str, Any]) -> list[tuple[int, int]]:
        return [(d["events"], d["users"]) for d in body["days"][-2:]]

    await arrive(("zed", "Viewed", earlier), ("zed", "Viewed", just_now))
    first = await overview()
    assert last_two_days(first) == [(1, 1), (1, 1)] and first["users_approximate"] is True
    await arrive(("amy", "Bought", earlier + 60), ("amy", "Bought", just_now))
    second = await overview()
    # Yesterday comes from the first answer; today and the last five minutes were read again.
    assert last_two_days(second) == [(1, 1), (2, 2)]
    assert second["last_5_minutes"]["events"] == (2 if just_now >= time.time() - 300 else 0)
    assert second["top_events"] == [{"name": "Viewed", "events": 2}, {"name": "Bought", "events": 1}]
    monkeypatch.setattr(insight_routes, "CLOSED_DAYS_TTL_S", 0.0)
    third = await overview()
    assert last_two_days(third) == [(2, 2), (2, 2)]
    assert third["top_events"] == [{"name": "Bought", "events": 2}, {"name": "Viewed", "events": 2}]

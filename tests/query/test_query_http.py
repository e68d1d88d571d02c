"""The query endpoints over HTTP on both warehouse paths: cursors, counts, reports, saved segments."""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tapwire_core.control.store import ControlStore
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_query.audience import SegmentNotFound, count_user_keys, resolve_user_keys
from tapwire_query.cql import compile as cql_compile
from tapwire_query.cql import parse as cql_parse
from tapwire_query.cql import parse_query
from tapwire_query.cursors import CursorCodec, CursorState
from tapwire_query.routes import router as query_router
from tapwire_services import generate
from tapwire_services.accounts import directory_for
from tests.credentials import LOOKUP_DIGESTS
from tests.query.dataset import ACCOUNT, OTHER_ACCOUNT, truth
from tests.query.shapes import with_objects

pytestmark = pytest.mark.integration

SECRET = "cursor-secret-for-tests"
PAGING_ACCOUNT = "ACC-PAGING"
PAGING_EVENTS = 25_000
ACCOUNTS = (ACCOUNT, OTHER_ACCOUNT, PAGING_ACCOUNT)
JAN = {"from": 20260101, "to": 20260131}


def headers(account: str = ACCOUNT) -> dict[str, str]:
    return {"X-CleverTap-Account-Id": account, "X-CleverTap-Passcode": f"passcode-{account}-0123456789"}


async def _ready() -> dict[str, bool]:
    return {"test": True}


@pytest.fixture(scope="module")
async def store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlStore]:
    path: Path = tmp_path_factory.mktemp("control") / "control.db"
    control = ControlStore(f"sqlite+aiosqlite:///{path}", lookup_digests=LOOKUP_DIGESTS)
    await control.start()
    for account in ACCOUNTS:
        await control.upsert_account(
            account,
            passcode=f"passcode-{account}-0123456789",
            write_key=f"writekey-{account}-0123456789",
            region="eu1",
        )
    yield control
    await control.close()


@pytest.fixture(scope="module")
async def paging(loaded: Warehouse) -> Warehouse:
    """A third tenant with 25k events in January (plus profiles), for the full paging test."""
    records = [*generate.profiles(1000, 3), *generate.events(1000, PAGING_EVENTS, 3)]
    await generate.load(loaded, records, account_id=PAGING_ACCOUNT, received_ms=1_770_000_000_000)
    return loaded


def client_for(warehouse: Warehouse, store: ControlStore, **overrides: Any) -> httpx.AsyncClient:
    settings = Settings(query_cursor_secret=SECRET, **overrides)
    context = ServiceContext(
        settings=settings,
        authenticator=directory_for(store),
        readiness=_ready,
        warehouse_=warehouse,
        store_=store,
    )
    app = create_app(context, [query_router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query", timeout=120)


@pytest.fixture(scope="module")
async def client(paging: Warehouse, store: ControlStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(paging, store) as c:
        yield c


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "success", body
    return body


def fail(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "fail" and body["code"] == status and text in body["error"], body


async def drain(
    client: httpx.AsyncClient,
    path: str,
    first: dict[str, Any],
    account: str = ACCOUNT,
    *,
    between: Any = None,
) -> tuple[list[dict[str, Any]], int]:
    """Follow cursors like CleverTap's clients do; returns the records and how many pages were read."""
    cursor = first.get("cursor") or first.get("next_cursor")
    records: list[dict[str, Any]] = list(first.get("records", []))
    pages = 0
    while cursor:
        assert all(c.isalnum() or c in "-_" for c in cursor), "cursors are URL-safe"
        body = ok(await client.get(f"{path}?cursor={cursor}", headers=headers(account)))
        assert "cursor" not in body
        records.extend(body["records"])
        pages += 1
        cursor = body.get("next_cursor")
        if between is not None:
            await between()
    return records, pages


def event_key(record: dict[str, Any]) -> bytes:
    return orjson.dumps(
        [record["profile"]["identity"], record["ts"], record["event_name"], record["event_props"]],
        option=orjson.OPT_SORT_KEYS,
    )


async def test_full_paging_returns_every_event_exactly_once_while_data_arrives(
    client: httpx.AsyncClient, paging: Warehouse
) -> None:
    expected = collections.Counter(
        orjson.dumps([r["identity"], r["ts"], r["evtName"], r["evtData"]], option=orjson.OPT_SORT_KEYS)
        for r in {
            orjson.dumps(r, option=orjson.OPT_SORT_KEYS): r for r in generate.events(1000, PAGING_EVENTS, 3)
        }.values()
    )
    names = list(generate.EVENT_NAMES)
    arrivals = iter(range(1000))

    async def late_arrival() -> None:
        # New events in the exported window, received after the export started: never in this export.
        i = next(arrivals)
        record = {
            "type": "event",
            "identity": f"late-{i}",
            "ts": 1_767_225_600 + i,
            "evtName": names[0],
            "evtData": {},
        }
        await generate.load(
            paging, [record], account_id=PAGING_ACCOUNT, received_ms=int(time.time() * 1000) + 1000
        )

    got: collections.Counter[bytes] = collections.Counter()
    for name in names:
        wanted = sum(1 for key in expected if orjson.loads(key)[2] == name)
        query = orjson.dumps({"event_name": name, **JAN}).decode()
        started = ok(
            await client.get(
                "/1/events.json",
                params={"batch_size": "5000", "query": query, "profile": "false", "events": "false"},
                headers=headers(PAGING_ACCOUNT),
            )
        )
        assert set(started) == {"status", "cursor"}
        records, pages = await drain(client, "/1/events.json", started, PAGING_ACCOUNT, between=late_arrival)
        assert len(records) == wanted
        assert pages == wanted // 5000 + 1
        got.update(event_key(r) for r in records)
    assert got == expected
    assert sum(got.values()) == len(expected) > 24_000


async def test_post_form_equals_get_form_and_matches_truth(client: httpx.AsyncClient) -> None:
    query = {
        "event_name": "Product Viewed",
        **JAN,
        "event_properties": [{"name": "category", "operator": "equals", "value": ["books", "toys"]}],
        "common_profile_properties": {
            "profile_fields": [{"name": "Age", "operator": "less_than", "value": 50}]
        },
    }
    posted = ok(await client.post("/1/events.json?batch_size=97", json=query, headers=headers()))
    by_post, pages = await drain(client, "/1/events.json", posted)
    got = ok(
        await client.get(
            "/1/events.json",
            params={"batch_size": "97", "query": orjson.dumps(query).decode()},
            headers=headers(),
        )
    )
    by_get, _ = await drain(client, "/1/events.json", got)
    assert by_post == by_get
    expected = truth().event_rows(parse_query(query))
    assert len(by_post) == len(expected) > 97
    assert pages == len(expected) // 97 + 1
    # Records of merged users carry the canonical user's identity.
    t = truth()
    assert sorted((r["ts"], "i:" + r["profile"]["identity"]) for r in by_post) == sorted(
        (e.ts_ms // 1000, t.canon(e.user)) for e in expected
    )
    first = by_post[0]
    assert set(first) >= {"ts", "event_props", "session_props", "profile", "event_name"}
    assert "profileData" in first["profile"] and "events" in first["profile"]


async def test_profiles_export_pages_the_users_of_a_query(client: httpx.AsyncClient) -> None:
    query = {"event_name": "Charged", **JAN, "conditions": [{"did_not": {"event_name": "Shared", **JAN}}]}
    started = ok(await client.post("/1/profiles.json?batch_size=23", json=query, headers=headers()))
    records, _ = await drain(client, "/1/profiles.json", started)
    keys = [r["user_key"] for r in records]
    assert keys == sorted(keys)
    assert set(keys) == truth().users(parse_query(query)) and len(keys) == len(set(keys))
    assert all(r["identity"] == r["user_key"][2:] for r in records)


async def test_batch_size_is_capped_at_5000(client: httpx.AsyncClient) -> None:
    query = orjson.dumps({"event_name": "App Opened", **JAN}).decode()
    started = ok(
        await client.get(
            "/1/events.json",
            params={"batch_size": "100000", "query": query, "profile": "false", "events": "false"},
            headers=headers(PAGING_ACCOUNT),
        )
    )
    page = ok(await client.get(f"/1/events.json?cursor={started['cursor']}", headers=headers(PAGING_ACCOUNT)))
    assert len(page["records"]) == 5000 and page["next_cursor"]
    fail(
        await client.get("/1/events.json", params={"batch_size": "x", "query": query}, headers=headers()),
        400,
        "batch_size",
    )


async def test_bad_cursors_are_refused(client: httpx.AsyncClient) -> None:
    query = {"event_name": "App Opened", **JAN}
    cursor = ok(await client.post("/1/events.json?batch_size=10", json=query, headers=headers()))["cursor"]
    tampered = cursor[:-3] + ("AAA" if cursor[-3:] != "AAA" else "BBB")
    fail(await client.get(f"/1/events.json?cursor={tampered}", headers=headers()), 400, "not valid")
    fail(await client.get("/1/events.json?cursor=%%%", headers=headers()), 400, "not valid")
    fail(
        await client.get(f"/1/events.json?cursor={cursor}", headers=headers(OTHER_ACCOUNT)),
        403,
        "another account",
    )
    fail(await client.get(f"/1/profiles.json?cursor={cursor}", headers=headers()), 400, "another endpoint")
    # A cursor that is correctly signed but expired.
    codec = CursorCodec(SECRET, ttl_s=60, clock=lambda: time.time() - 3600)
    state = CursorState("events", ACCOUNT, query, 10, int(time.time() * 1000), None, codec.expiry(), {})
    fail(await client.get(f"/1/events.json?cursor={codec.encode(state)}", headers=headers()), 400, "expired")
    # Signed with another secret: forged.
    forged = CursorCodec("another-secret", ttl_s=60).encode(state)
    fail(await client.get(f"/1/events.json?cursor={forged}", headers=headers()), 400, "not valid")
    # The genuine cursor still works.
    ok(await client.get(f"/1/events.json?cursor={cursor}", headers=headers()))
    assert base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


async def test_export_errors(client: httpx.AsyncClient) -> None:
    fail(
        await client.post("/1/events.json", json={"event_name": "Never Seen", **JAN}, headers=headers()),
        400,
        "not known",
    )
    fail(await client.post("/1/events.json", json={"conditions": []}, headers=headers()), 400, "event_name")
    bad = {
        "event_name": "App Opened",
        **JAN,
        "event_properties": [{"name": "x", "operator": "near", "value": 1}],
    }
    fail(await client.post("/1/events.json", json=bad, headers=headers()), 422, "event_properties.0.operator")
    fail(await client.post("/1/profiles.json", content=b"{nope", headers=headers()), 400, "Malformed")
    wrong = {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": "wrong"}
    for path in ("/1/counts/profiles.json", "/1/events.json", "/segments"):
        fail(await client.post(path, json={}, headers=wrong), 401, "not valid")
    huge = b'{"event_name": "' + b"x" * (1024 * 1024) + b'"}'
    fail(await client.post("/1/counts/profiles.json", content=huge, headers=headers()), 413, "at most")
    fail(await client.get("/1/profiles.json", headers=headers()), 400, "query")
    fail(await client.get("/1/profiles.json", params={"query": "{"}, headers=headers()), 400, "JSON")


async def test_counts_match_truth(client: httpx.AsyncClient) -> None:
    query = {
        "event_name": "Searched",
        **JAN,
        "event_properties": [{"name": "query", "operator": "contains", "value": "o"}],
        "advanced_query": {"did_none": [{"event_name": "Charged", **JAN}]},
    }
    expected_users = truth().users(parse_query(query))
    body = ok(await client.post("/1/counts/profiles.json", json=query, headers=headers()))
    assert body == {"status": "success", "count": len(expected_users)}
    body = ok(await client.post("/1/counts/events.json", json=query, headers=headers()))
    assert body["count"] == len(truth().event_rows(parse_query(query)))
    fail(
        await client.post("/1/counts/events.json", json={"conditions": []}, headers=headers()),
        400,
        "event_name",
    )
    fail(
        await client.post("/1/counts/profiles.json", json={"evnt_name": 1}, headers=headers()),
        422,
        "evnt_name",
    )


async def test_slow_counts_answer_partial_then_the_same_count(paging: Warehouse, store: ControlStore) -> None:
    query = {"event_name": "App Opened", **JAN, "conditions": [{"did": {"event_name": "Charged", **JAN}}]}
    async with client_for(paging, store) as sync_client:
        sync = ok(await sync_client.post("/1/counts/profiles.json", json=query, headers=headers()))["count"]
    async with client_for(paging, store, query_sync_wait_s=0) as slow:
        for path in ("/1/counts/profiles.json", "/1/counts/events.json"):
            first = await slow.post(path, json=query, headers=headers())
            assert first.status_code == 200
            body = first.json()
            assert body["status"] == "partial" and isinstance(body["req_id"], int)
            fail(
                await slow.get(f"{path}?req_id={body['req_id']}", headers=headers(OTHER_ACCOUNT)),
                404,
                "req_id",
            )
            while body["status"] == "partial":
                await asyncio.sleep(0.05)
                body = (await slow.get(f"{path}?req_id={body['req_id']}", headers=headers())).json()
            assert body["status"] == "success"
            if path.endswith("profiles.json"):
                assert body["count"] == sync == len(truth().users(parse_query(query)))
            else:
                assert body["count"] == len(truth().event_rows(parse_query(query)))
        fail(await slow.get("/1/counts/profiles.json?req_id=12345", headers=headers()), 404, "req_id")
        for outside in (-1, 0, 2**63, 10**40):
            fail(
                await slow.get(f"/1/counts/profiles.json?req_id={outside}", headers=headers()), 404, "req_id"
            )
        fail(await slow.get("/1/counts/profiles.json?req_id=abc", headers=headers()), 400, "req_id")


async def test_top_and_trends(client: httpx.AsyncClient) -> None:
    body = {
        "event_name": "Product Viewed",
        **JAN,
        "groups": {
            "by_category": {"property_type": "event_properties", "name": "category", "top_n": 3},
            "least_platform": {"property_type": "event_properties", "name": "Platform", "order": "asc"},
        },
    }
    result = ok(await client.post("/1/counts/top.json", json=body, headers=headers()))
    events = [e for e in truth().events if e.name == "Product Viewed"]
    categories = collections.Counter(e.props["category"] for e in events)
    assert result["by_category"] == dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    platforms = collections.Counter(e.props["Platform"] for e in events if "Platform" in e.props)
    assert result["least_platform"] == dict(sorted(platforms.items(), key=lambda kv: (kv[1], kv[0])))
    by_city = {**body, "groups": {"city": {"property_type": "profile_fields", "name": "City", "top_n": 50}}}
    t = truth()
    cities = collections.Counter(
        city for e in events if (city := t.profile_value(t.canon(e.user), "City")[1]) is not None
    )
    result = ok(await client.post("/1/counts/top.json", json=by_city, headers=headers()))
    assert result["city"] == dict(sorted(cities.items(), key=lambda kv: (-kv[1], kv[0])))
    bad = {**body, "groups": {"g": {"property_type": "geo_fields", "name": "x"}}}
    fail(await client.post("/1/counts/top.json", json=bad, headers=headers()), 422, "groups.g.property_type")

    trend = {
        "event_name": "Charged",
        **JAN,
        "groups": {
            "d": {"trend_type": "daily"},
            "w": {"trend_type": "weekly"},
            "m": {"trend_type": "monthly"},
        },
    }
    charged = [e for e in truth().events if e.name == "Charged"]
    daily = collections.Counter(e.day.strftime("%Y%m%d") for e in charged)
    result = ok(await client.post("/1/counts/trends.json", json=trend, headers=headers()))
    assert result["d"] == dict(sorted(daily.items()))
    assert sum(result["w"].values()) == sum(result["m"].values()) == len(charged)
    assert all(dt.datetime.strptime(k, "%Y%m%d").weekday() == 0 for k in result["w"])
    unique = ok(await client.post("/1/counts/trends.json", json={**trend, "unique": True}, headers=headers()))
    assert unique["m"] == {"20260101": len({truth().canon(e.user) for e in charged})}
    summed = ok(
        await client.post(
            "/1/counts/trends.json", json={**trend, "sum_event_prop": "Amount"}, headers=headers()
        )
    )
    assert summed["m"]["20260101"] == pytest.approx(sum(e.props["Amount"] for e in charged))


async def test_now_counts_users_active_in_the_last_five_minutes(
    client: httpx.AsyncClient, paging: Warehouse
) -> None:
    now_s = int(time.time())
    records = [
        {
            "type": "event",
            "identity": f"now-{i}",
            "ts": now_s - 10 * i,
            "evtName": "App Opened",
            "evtData": {},
        }
        for i in range(3)
    ] + [
        {"type": "event", "identity": "long-ago", "ts": now_s - 3600, "evtName": "App Opened", "evtData": {}}
    ]
    await generate.load(paging, records, account_id=OTHER_ACCOUNT, received_ms=now_s * 1000)
    assert ok(await client.post("/1/now.json", json={}, headers=headers(OTHER_ACCOUNT)))["count"] == 3
    split = ok(await client.post("/1/now.json", json={"user_type": True}, headers=headers(OTHER_ACCOUNT)))
    assert split["user_type"] == {"new": 3, "returning": 0}
    assert ok(await client.post("/1/now.json", headers=headers()))["count"] == 0


async def test_saved_segments(client: httpx.AsyncClient, paging: Warehouse, store: ControlStore) -> None:
    definition = {
        "common_profile_properties": {"geo_fields": [["India"]]},
        "conditions": [
            {"did": {"event_name": "App Opened", **JAN, "operator": "greater_than_equals", "value": 2}}
        ],
    }
    created = await client.post(
        "/segments", json={"name": "Active in India", "definition": definition}, headers=headers()
    )
    assert created.status_code == 201, created.text
    segment_id = created.json()["id"]
    expected = truth().users(parse_query(definition))
    read = ok(await client.get(f"/segments/{segment_id}", headers=headers()))
    assert read["segment"]["definition"] == definition and read["segment"]["name"] == "Active in India"
    assert ok(await client.post(f"/segments/{segment_id}/count", headers=headers()))["count"] == len(expected)
    first = ok(await client.get(f"/segments/{segment_id}/members?batch_size=7", headers=headers()))
    members, _ = await drain(client, f"/segments/{segment_id}/members", first)
    assert [m["user_key"] for m in members] == sorted(expected)
    assert all(m["identity"] == m["user_key"][2:] for m in members)
    fail(await client.get(f"/segments/{segment_id}", headers=headers(OTHER_ACCOUNT)), 404, "not found")
    fail(await client.post(f"/segments/{segment_id}/count", headers=headers(OTHER_ACCOUNT)), 404, "not found")
    bad = {"name": "x", "definition": {"conditions": [{"did": {"event_name": "x", "operator": "many"}}]}}
    fail(await client.post("/segments", json=bad, headers=headers()), 422, "conditions.0.did.operator")
    fail(await client.post("/segments", json={"definition": {}}, headers=headers()), 422, "name")
    other = ok(await client.get(f"/segments/{segment_id}/members?batch_size=7", headers=headers()))
    fail(
        await client.get(f"/segments/nope/members?cursor={other['next_cursor']}", headers=headers()),
        400,
        "another segment",
    )

    # The library call the messaging service uses: same members, by segment id or by where.
    pages = [
        keys
        async for keys in resolve_user_keys(
            paging, account_id=ACCOUNT, segment_id=segment_id, store=store, page_size=10
        )
    ]
    assert [k for keys in pages for k in keys] == sorted(expected) and max(map(len, pages)) == 10
    by_where = [
        k async for keys in resolve_user_keys(paging, account_id=ACCOUNT, where=definition) for k in keys
    ]
    assert by_where == sorted(expected)
    assert await count_user_keys(paging, account_id=ACCOUNT, where=definition) == len(expected)
    assert await count_user_keys(paging, account_id=ACCOUNT, where={}) == len(truth().everyone())
    with pytest.raises(SegmentNotFound):
        await count_user_keys(paging, account_id=OTHER_ACCOUNT, segment_id=segment_id, store=store)


async def test_profile_lookup_answers_with_the_merged_person(client: httpx.AsyncClient) -> None:
    t = truth()
    merged = ok(await client.get("/1/profile.json?identity=user-0000005", headers=headers()))["record"]
    canonical = ok(await client.get("/1/profile.json?identity=user-0000003", headers=headers()))["record"]
    assert merged == canonical and merged["identity"] == "user-0000003"
    expected = collections.Counter(e.name for e in t.events if t.canon(e.user) == "i:user-0000003")
    assert {name: summary["count"] for name, summary in merged["events"].items()} == dict(expected)
    assert merged["profileData"]["City"] == t.profile_value("i:user-0000003", "City")[1]
    # A demerged key is its own person again.
    alone = ok(await client.get("/1/profile.json?identity=user-0000011", headers=headers()))["record"]
    assert alone["identity"] == "user-0000011"
    fail(await client.get("/1/profile.json?identity=nobody", headers=headers()), 404, "not found")


async def test_queries_are_parsed_and_compiled_off_the_event_loop(
    client: httpx.AsyncClient, paging: Warehouse, store: ControlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every endpoint that takes a query, and the audience library, validate and compile it on other
    threads than the event loop's (a large query is CPU work the loop must not wait on)."""
    loop_thread = threading.get_ident()
    seen: list[tuple[str, int]] = []
    check_shape = cql_parse._check_shape
    start_statement = cql_compile._Statement.__init__

    def shape(body: Any) -> None:
        seen.append(("parse", threading.get_ident()))
        check_shape(body)

    def statement(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(("compile", threading.get_ident()))
        start_statement(self, *args, **kwargs)

    monkeypatch.setattr(cql_parse, "_check_shape", shape)
    monkeypatch.setattr(cql_compile._Statement, "__init__", statement)
    query = {
        "event_name": "App Opened",
        **JAN,
        "conditions": [{"profile": {"name": "City", "operator": "exists"}}],
    }
    groups = {"groups": {"g": {"property_type": "event_properties", "name": "Platform"}}}
    ok(await client.post("/1/counts/profiles.json", json=query, headers=headers()))
    ok(await client.post("/1/counts/events.json", json=query, headers=headers()))
    ok(await client.post("/1/counts/top.json", json=query | groups, headers=headers()))
    ok(
        await client.post(
            "/1/counts/trends.json",
            json=query | {"groups": {"d": {"trend_type": "daily"}}},
            headers=headers(),
        )
    )
    ok(await client.post("/1/now.json", json={}, headers=headers()))
    started = ok(await client.post("/1/events.json?batch_size=5", json=query, headers=headers()))
    ok(await client.get(f"/1/events.json?cursor={started['cursor']}", headers=headers()))
    segment = await client.post("/segments", json={"name": "s", "definition": query}, headers=headers())
    assert segment.status_code == 201, segment.text
    segment_id = segment.json()["id"]
    ok(await client.post(f"/segments/{segment_id}/count", headers=headers()))
    ok(await client.get(f"/segments/{segment_id}/members?batch_size=5", headers=headers()))
    await count_user_keys(paging, account_id=ACCOUNT, segment_id=segment_id, store=store)
    async for _ in resolve_user_keys(paging, account_id=ACCOUNT, where=query, page_size=50):
        pass
    assert {kind for kind, _ in seen} == {"parse", "compile"} and len(seen) > 15
    assert [kind for kind, thread in seen if thread == loop_thread] == []


async def test_a_query_past_the_cost_limits_is_refused_naming_the_limit(
    paging: Warehouse, store: ControlStore
) -> None:
    query = {"event_name": "App Opened", **JAN}
    async with client_for(paging, store) as unlimited:
        assert ok(await unlimited.post("/1/counts/profiles.json", json=query, headers=headers()))["count"] > 0
        started = ok(await unlimited.post("/1/events.json?batch_size=5", json=query, headers=headers()))
    async with client_for(paging, store, query_max_rows_to_read=100) as limited:
        refused = await limited.post("/1/counts/profiles.json", json=query, headers=headers())
        fail(refused, 422, "more rows than one query may")
        fail(
            await limited.get(f"/1/events.json?cursor={started['cursor']}", headers=headers()),
            422,
            "more rows than one query may",
        )


async def test_a_query_too_large_for_clickhouse_is_refused_as_a_client_error(
    client: httpx.AsyncClient,
) -> None:
    # Its SQL fits ClickHouse's size limit, its syntax tree not (max_ast_elements): a 422, not a 500.
    body = with_objects(463)
    fail(await client.post("/1/counts/profiles.json", json=body, headers=headers()), 422, "more conditions")
    # Larger still: the compiler refuses it before anything reaches the warehouse.
    fail(
        await client.post("/1/counts/profiles.json", json=with_objects(999), headers=headers()),
        422,
        "too large",
    )

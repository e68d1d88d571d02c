"""Audiences and recipient profiles from the warehouse, on chDB and on ClickHouse over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from tapwire_core.warehouse import Warehouse, schema
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_messaging.audience import (
    CHUNK,
    AudienceError,
    CqlAudience,
    DefaultAudienceResolver,
    ExplicitIdentities,
)
from tapwire_messaging.recipients import RecipientProfile, load_profiles, push_targets
from tests.infra.clickhouse import ENGINES, Engine, WarehouseFactory
from tests.messaging.rig import ACCOUNT, add_profiles, add_push_tokens

pytestmark = pytest.mark.integration

USERS = CHUNK + 500  # more than one chunk, so keyset paging is exercised
JAN_10 = 1_768_003_200_000  # 2026-01-10 00:00 UTC, ms


@pytest.fixture(params=ENGINES)
async def warehouse(request: pytest.FixtureRequest, warehouse_factory: WarehouseFactory) -> Warehouse:
    from tapwire_core.warehouse.migrations import migrate

    engine: Engine = request.param
    made = await warehouse_factory(engine)
    await migrate(made, cluster=None)
    return made


async def _events(warehouse: Warehouse, name: str, users: list[str], ts_ms: int) -> None:
    await warehouse.insert(
        "events",
        [
            "account_id",
            "event_id",
            "user_key",
            "name",
            "ts",
            "received_at",
            "source",
            "properties",
            "context",
        ],
        [(ACCOUNT, f"{name}-{u}-{ts_ms}", u, name, ts_ms, ts_ms, "clevertap", "{}", "{}") for u in users],
    )


async def test_event_audience_pages_through_every_user_once(warehouse: Warehouse) -> None:
    users = [f"i:user{i:05d}" for i in range(USERS)]
    await _events(warehouse, "Bought", users, JAN_10)
    await _events(warehouse, "Bought", users[:10], JAN_10 + 3_600_000)  # repeat buyers appear once
    await _events(warehouse, "Bought", ["i:late"], JAN_10 + 5 * 86_400_000)
    await _events(warehouse, "Viewed", ["i:viewer"], JAN_10)
    audience = CqlAudience(
        warehouse, None, where={"event_name": "Bought", "from": 20260110, "to": "20260111"}
    )
    chunks = [list(chunk) async for chunk in audience.chunks(ACCOUNT)]
    assert [len(c) for c in chunks] == [CHUNK, 500]
    assert sorted(k for c in chunks for k in c) == users
    assert await audience.estimate(ACCOUNT) == USERS
    assert [c async for c in audience.chunks("OTHER-ACCOUNT")] == []


async def test_profiles_and_tokens_for_a_full_chunk(warehouse: Warehouse) -> None:
    keys = [f"i:u{i}" for i in range(CHUNK)]
    await add_profiles(warehouse, [(k, {"Email": f"{k[2:]}@example.com", "Name": k}) for k in keys[:-1]])
    now = int(time.time() * 1000)
    await warehouse.insert(
        "profile_props",
        ["account_id", "user_key", "key", "value", "ts", "deleted"],
        [
            (ACCOUNT, keys[0], "Name", orjson.dumps("Renamed").decode(), now + 5000, 0),
            (ACCOUNT, keys[1], "Name", orjson.dumps("x").decode(), now + 5000, 1),
        ],
    )
    await add_push_tokens(warehouse, [(keys[0], "tok-a", "FCM"), (keys[2], "tok-b", "apns")])
    profiles = await load_profiles(warehouse, account_id=ACCOUNT, user_keys=keys, with_tokens=True)
    assert len(profiles) == CHUNK
    assert profiles[keys[0]].profile["Name"] == "Renamed"
    assert "Name" not in profiles[keys[1]].profile  # deleted later
    assert profiles[keys[0]].email == "u0@example.com"
    assert profiles[keys[0]].tokens == [("tok-a", "fcm")]
    assert profiles[keys[2]].tokens == [("tok-b", "apns")]
    assert profiles[keys[-1]].profile == {} and profiles[keys[-1]].email is None


async def test_every_token_of_a_user_newest_first_and_a_moved_token_only_for_its_new_user(
    warehouse: Warehouse,
) -> None:
    now = int(time.time() * 1000)
    await add_push_tokens(warehouse, [("i:ann", "tok-old", "fcm"), ("i:ann", "tok-moved", "fcm")], ts_ms=now)
    await add_push_tokens(warehouse, [("i:ann", "tok-new", "APNS")], ts_ms=now + 1000)
    await add_push_tokens(warehouse, [("i:ann", "tok-old", "fcm")], ts_ms=now + 2000)  # uploaded again
    # The device behind tok-moved now belongs to Bob.
    await add_push_tokens(warehouse, [("i:bob", "tok-moved", "fcm")], ts_ms=now + 3000)
    profiles = await load_profiles(warehouse, account_id=ACCOUNT, user_keys=["i:ann"], with_tokens=True)
    assert profiles["i:ann"].tokens == [("tok-old", "fcm"), ("tok-new", "apns")]
    both = await load_profiles(warehouse, account_id=ACCOUNT, user_keys=["i:ann", "i:bob"], with_tokens=True)
    assert both["i:bob"].tokens == [("tok-moved", "fcm")]
    assert both["i:ann"].tokens == profiles["i:ann"].tokens

    # Token uploads carry an objectId; once that key is merged into Cy's identity, its tokens are Cy's.
    await add_push_tokens(warehouse, [("o:guid-cy", "tok-cy", "fcm")], ts_ms=now)
    cy = await load_profiles(warehouse, account_id=ACCOUNT, user_keys=["i:cy"], with_tokens=True)
    assert cy["i:cy"].tokens == []
    columns = [name for name, _ in schema.USER_ALIAS_COLUMNS]
    await warehouse.insert(schema.USER_ALIASES, columns, [(ACCOUNT, "o:guid-cy", "i:cy", now, 1, 1)])
    cy = await load_profiles(warehouse, account_id=ACCOUNT, user_keys=["i:cy"], with_tokens=True)
    assert cy["i:cy"].tokens == [("tok-cy", "fcm")]
    # Asked by the merged-away key, the same person's tokens are found too.
    guid = await load_profiles(warehouse, account_id=ACCOUNT, user_keys=["o:guid-cy"], with_tokens=True)
    assert guid["o:guid-cy"].tokens == [("tok-cy", "fcm")]


def test_push_targets_latest_or_every_live_token_of_the_requested_platforms() -> None:
    # A Windows token is kept but no provider here reaches it: it is never chosen, not even as the latest.
    tokens = [("t0", "wns"), ("t1", "fcm"), ("t2", "apns"), ("t3", "gcm")]
    profile = RecipientProfile("i:ann", tokens=tokens)
    assert push_targets(profile, dead=set(), devices=None, all_devices=False) == [("t1", "fcm")]
    assert push_targets(profile, dead={"t1"}, devices=None, all_devices=False) == [("t2", "apns")]
    assert push_targets(profile, dead={"t1"}, devices=None, all_devices=True) == [
        ("t2", "apns"),
        ("t3", "gcm"),
    ]
    assert push_targets(profile, dead=set(), devices=["android"], all_devices=True) == [
        ("t1", "fcm"),
        ("t3", "gcm"),
    ]
    assert push_targets(profile, dead=set(), devices=["ios"], all_devices=False) == [("t2", "apns")]
    assert push_targets(profile, dead=set(), devices=["windows"], all_devices=True) == []


def test_identity_audiences_and_invalid_audiences(tmp_path: Path) -> None:
    assert ExplicitIdentities({"Identity": ["ann", "ann"], "Email": ["b@x.io"]}).user_keys() == [
        "i:ann",
        "e:b@x.io",
    ]
    with pytest.raises(AudienceError, match="unknown identity kind"):
        ExplicitIdentities({"Nickname": ["x"]}).user_keys()
    resolver = DefaultAudienceResolver(None)
    with pytest.raises(AudienceError, match="no warehouse"):
        resolver.source({"segment_id": "42"})
    with pytest.raises(AudienceError, match="no warehouse"):
        resolver.source({"where": {}})
    # Sources are built without I/O, so an unstarted warehouse is enough to check the where's validation.
    with_warehouse = DefaultAudienceResolver(ChdbWarehouse(tmp_path / "unused"))
    bad = {
        "where": {
            "event_name": "x",
            "from": 20260101,
            "to": 20260101,
            "event_properties": [{"name": "a", "operator": "bogus", "value": 1}],
        }
    }
    with pytest.raises(AudienceError, match=r"^where: event_properties\.0\.operator"):
        with_warehouse.source(bad)
    with pytest.raises(AudienceError, match="no control store"):
        with_warehouse.source({"segment_id": "42"})

"""Hostile property names and values: correct results or a CqlError (422), never an SQL error or a leak."""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_core.warehouse import Warehouse
from tapwire_query.cql import CompileOptions, compile_user_set, parse_query
from tapwire_services import generate
from tests.query.dataset import ACCOUNT, TODAY, truth

pytestmark = pytest.mark.integration

HOSTILE_ACCOUNT = "ACC-HOSTILE"
HOSTILE = [
    "it's",
    'say "hi"',
    "back\\slash\\",
    "\\N",
    "\\'",
    "line\nbreak\r\n",
    "tab\there",
    "ünïcødé ✓ 😀",
    "{p0:String}",
    "{p1:Float64}",
    "{account:String}",
    "_aliases",
    "%(x)s %s",
    "'; DROP TABLE events; --",
    "' OR 1=1 --",
    "') OR account_id != '' OR ('",
    "SELECT * FROM events",
    "Items",
    "Items.'",
    "$D_1767225600",
    "null",
]
JAN_5 = 1_767_571_200
OPTIONS = CompileOptions(today=TODAY)


def event_name(text: str) -> str:
    """The gateway refuses unprintable event names, so those texts travel only as properties."""
    return text if text.isprintable() else "Hostile"


def hostile_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for i, text in enumerate(HOSTILE):
        records.append(
            {
                "type": "event",
                "identity": f"hostile-{i}",
                "ts": JAN_5 + i,
                "evtName": event_name(text),
                "evtData": {text: text, "n": i},
            }
        )
        records.append(
            {"type": "profile", "identity": f"hostile-{i}", "ts": JAN_5, "profileData": {text: text}}
        )
    return records


@pytest.fixture(scope="module")
async def hostile(loaded: Warehouse) -> Warehouse:
    accepted = await generate.load(
        loaded, hostile_records(), account_id=HOSTILE_ACCOUNT, received_ms=JAN_5 * 1000
    )
    assert accepted == 2 * len(HOSTILE)
    return loaded


async def users(warehouse: Warehouse, body: dict[str, Any], account: str = HOSTILE_ACCOUNT) -> set[str]:
    compiled = compile_user_set(parse_query(body), account_id=account, options=OPTIONS)
    return {row["uk"] for row in await warehouse.query(compiled.sql, compiled.params)}


def window() -> dict[str, int]:
    return {"from": 20260105, "to": 20260105}


@pytest.mark.parametrize("index", range(len(HOSTILE)))
async def test_hostile_name_and_value_match_exactly_their_own_user(hostile: Warehouse, index: int) -> None:
    text = HOSTILE[index]
    name = event_name(text)
    me = {f"i:hostile-{index}"}
    flt = {"name": text, "operator": "equals", "value": text}
    assert await users(hostile, {"event_name": name, **window(), "event_properties": [flt]}) == me
    if name == text:
        assert await users(hostile, {"event_name": text, **window()}) == me
    contains = {"name": text, "operator": "contains", "value": text}
    assert await users(hostile, {"event_name": name, **window(), "event_properties": [contains]}) == me
    profile = {"common_profile_properties": {"profile_fields": [flt]}}
    assert await users(hostile, profile) == me
    # The same query in another tenant sees nothing of this one.
    assert await users(hostile, {"event_name": name, **window()}, account=ACCOUNT) == set()


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_values_against_the_regular_account_give_the_true_answer(
    hostile: Warehouse, text: str
) -> None:
    body = {
        "event_name": "Searched",
        "from": 20260101,
        "to": 20260131,
        "event_properties": [{"name": "query", "operator": "does_not_contain", "value": text}],
        "conditions": [{"not": {"profile": {"name": text, "operator": "exists"}}}],
    }
    assert await users(hostile, body, account=ACCOUNT) == truth().users(parse_query(body))
    rows = await hostile.query(
        "SELECT count() AS n FROM events WHERE account_id = {a:String}", {"a": ACCOUNT}
    )
    assert rows[0]["n"] > 0

"""Session properties read the event's context (Segment-style events carry one); events without it never match."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from tapwire_core.warehouse import Warehouse
from tapwire_ingest.loader.rows import EVENT_COLUMNS
from tapwire_query.audience import audience_query
from tapwire_query.cql import CompileOptions, compile_event_count, compile_user_set, parse_query
from tests.query.dataset import TODAY

pytestmark = pytest.mark.integration

ACCOUNT = "ACC-SESSION"
AT = dt.datetime(2026, 1, 9, 8, 30, tzinfo=dt.UTC)
CONTEXTS: dict[str, Any] = {
    "a": {"campaign": {"source": "newsletter", "medium": "email", "name": "winter"}, "locale": "de-DE"},
    "b": {"campaign": {"source": "ads", "medium": "cpc", "name": "winter"}, "first_time": "True"},
    "c": {"locale": "pt-PT"},
    "d": None,
}


@pytest.fixture(scope="module")
async def sessions(loaded: Warehouse) -> Warehouse:
    rows = [
        (ACCOUNT, f"s-{user}", f"i:{user}", user, "", "", "", "", "Page Viewed", AT, AT, "segment", "{}",
         orjson.dumps(context).decode() if context is not None else "")
        for user, context in CONTEXTS.items()
    ]  # fmt: skip
    await loaded.insert("events", EVENT_COLUMNS, rows)
    return loaded


async def users(warehouse: Warehouse, *session: dict[str, Any]) -> set[str]:
    body = {
        "event_name": "Page Viewed",
        "from": 20260109,
        "to": 20260109,
        "session_properties": list(session),
    }
    compiled = compile_user_set(parse_query(body), account_id=ACCOUNT, options=CompileOptions(today=TODAY))
    return {str(row["uk"])[2:] for row in await warehouse.query(compiled.sql, compiled.params)}


async def test_utm_and_context_keys(sessions: Warehouse) -> None:
    assert await users(sessions, {"name": "utm_source", "value": "newsletter"}) == {"a"}
    assert await users(sessions, {"name": "utm_medium", "operator": "not_equals", "value": "email"}) == {"b"}
    assert await users(sessions, {"name": "utm_campaign", "value": "winter"}) == {"a", "b"}
    assert await users(sessions, {"name": "utm_source", "operator": "does_not_exist"}) == {"c", "d"}
    assert await users(sessions, {"name": "locale", "operator": "contains", "value": "-PT"}) == {"c"}
    assert await users(sessions, {"name": "first_time", "value": "True"}) == {"b"}
    assert await users(sessions, {"name": "time_of_day", "value": ["08:00", "08:30"]}) == {"a", "b", "c", "d"}
    assert await users(sessions, {"name": "time_of_day", "value": ["08:31", "23:59"]}) == set()


async def test_counts_on_session_filters(sessions: Warehouse) -> None:
    body = {
        "event_name": "Page Viewed",
        "from": 20260109,
        "to": 20260109,
        "session_properties": [{"name": "utm_campaign", "value": "winter"}],
    }
    compiled = compile_event_count(parse_query(body), account_id=ACCOUNT, options=CompileOptions(today=TODAY))
    assert (await sessions.query(compiled.sql, compiled.params))[0]["n"] == 2


async def test_audience_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await audience_query(account_id=ACCOUNT)
    with pytest.raises(ValueError, match="exactly one"):
        await audience_query(account_id=ACCOUNT, where={}, segment_id="x")
    with pytest.raises(ValueError, match="control store"):
        await audience_query(account_id=ACCOUNT, segment_id="x")

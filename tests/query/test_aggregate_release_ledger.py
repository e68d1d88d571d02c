"""The record of released aggregates on SQLite and PostgreSQL: scopes kept apart (an account's, industry-wide),
the window's count and oldest time, earlier releases without the new one, forgetting and purging."""

from __future__ import annotations

import datetime as dt

import pytest

from tapwire_core.control.store import ControlStore
from tapwire_query.aggregates.releases import ReleaseLedger

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)


async def test_releases_are_kept_per_scope_and_leave_with_the_window(store: ControlStore) -> None:
    ledger = ReleaseLedger(store)
    released = {"groups": ["vFR"], "other": True}
    await ledger.record(
        "ACC-1", definition={}, anchor="20260901", released=released, at=NOW - dt.timedelta(days=95)
    )
    first = await ledger.record(
        "ACC-1", definition={"a": 1}, anchor="20261201", released=released, at=NOW - dt.timedelta(days=6)
    )
    second = await ledger.record("ACC-1", definition={"a": 2}, anchor="20261207", released=released, at=NOW)
    industry = await ledger.record(None, definition={"i": 1}, anchor="20261207", released=released, at=NOW)
    await ledger.record("ACC-2", definition={}, anchor="20261207", released=released, at=NOW)

    since = NOW - dt.timedelta(days=90)
    assert await ledger.in_window("ACC-1", since=since) == (2, NOW - dt.timedelta(days=6))
    assert await ledger.in_window(None, since=since) == (1, NOW)
    assert await ledger.in_window("ACC-3", since=since) == (0, None)

    earlier = await ledger.earlier("ACC-1", since=since, other_than=second)
    assert [(r.id, r.definition, r.anchor, r.released) for r in earlier] == [
        (first, {"a": 1}, "20261201", released)
    ]
    assert [r.id for r in await ledger.earlier(None, since=since, other_than="x")] == [industry]

    await ledger.forget(first)
    await ledger.purge(before=since)  # the 95-day-old release goes
    assert [
        r.id for r in await ledger.earlier("ACC-1", since=NOW - dt.timedelta(days=1000), other_than="x")
    ] == [second]

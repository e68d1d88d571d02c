"""The email feedback store on SQLite and PostgreSQL: each report once, the suppression rules, lifting, and no
address in any column."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.email_feedback import (
    EmailFeedbackRow,
    FeedbackEntry,
    FeedbackKind,
    SoftBouncePolicy,
    address_state,
    lift_suppression,
    record_feedback,
    suppressed_addresses,
)
from tapwire_core.control.store import ControlStore

pytestmark = pytest.mark.integration

POLICY = SoftBouncePolicy(limit=3, window_ms=1000)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[ControlStore]:
    control = ControlStore(store_url)
    await control.start()
    try:
        yield control
    finally:
        await control.close()


async def record(
    store: ControlStore, notice: str, address: str, kind: FeedbackKind, ts_ms: int
) -> tuple[bool, str | None]:
    entry = FeedbackEntry(notice, address, kind, "dsn", "c", ts_ms, user_key="i:u", detail="x" * 400)
    async with AsyncSession(store.engine) as session, session.begin():
        recorded = await record_feedback(session, account_id="ACC", entry=entry, policy=POLICY)
    return recorded.new, recorded.suppressed


async def suppressed(store: ControlStore, *addresses: str) -> dict[str, str]:
    async with AsyncSession(store.engine) as session, session.begin():
        return dict(await suppressed_addresses(session, account_id="ACC", addresses=addresses))


async def test_reports_apply_once_and_suppress_by_kind(store: ControlStore) -> None:
    assert await record(store, "n1", "Hard@Example.com", "hard_bounce", 10) == (True, "hard_bounce")
    assert await record(store, "n1", "Hard@Example.com", "hard_bounce", 10) == (False, None)
    assert await record(store, "n2", "hard@example.com ", "complaint", 11) == (True, None)  # listed already
    assert await record(store, "n3", "spam@example.com", "complaint", 12) == (True, "complaint")
    assert await record(store, "n4", "blocked@example.com", "block", 13) == (True, None)
    # Soft bounces: the third within the window suppresses; ones older than the window do not count.
    assert await record(store, "s1", "soft@example.com", "soft_bounce", 100) == (True, None)
    assert await record(store, "s2", "soft@example.com", "soft_bounce", 2000) == (True, None)
    assert await record(store, "s3", "soft@example.com", "soft_bounce", 2500) == (True, None)
    assert await record(store, "s4", "soft@example.com", "soft_bounce", 2900) == (True, "soft_bounces")
    assert await suppressed(
        store, "HARD@example.com", "spam@example.com", "blocked@example.com", "soft@example.com"
    ) == {
        "HARD@example.com": "hard_bounce",
        "spam@example.com": "complaint",
        "soft@example.com": "soft_bounces",
    }
    async with AsyncSession(store.engine) as session, session.begin():
        view, history = await address_state(session, account_id="ACC", address="hard@example.com")
        assert view is not None and view.reason == "hard_bounce"
        assert [h.kind for h in history] == ["complaint", "hard_bounce"]
        assert await lift_suppression(session, account_id="ACC", addresses=["soft@example.com"]) == 1
        assert (
            len(list(await session.scalars(select(EmailFeedbackRow.id)))) == 4
        )  # the soft ones are forgotten
    assert await suppressed(store, "soft@example.com") == {}
    # Nothing in either table holds an address.
    async with store.engine.connect() as connection:
        for table in ("email_feedback", "email_suppressions"):
            rows = (await connection.execute(text(f"SELECT * FROM {table}"))).all()
            assert rows and "example.com" not in repr(rows).lower()

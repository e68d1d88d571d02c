"""The request store on both control-plane databases (SQLite embedded, PostgreSQL distributed)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError

from tapwire_core.control.privacy.models import PrivacyAuditRow, PrivacyRequestRow
from tapwire_core.control.store import ControlStore
from tapwire_privacy.repository import PrivacyRepository, ProgressUpdate, RequestConflict, RequestNotFound
from tests.privacy.conftest import FakeClock

pytestmark = pytest.mark.integration


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


async def new(repository: PrivacyRepository, keys: list[str] | None = None) -> str:
    view = await repository.requests.create(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=keys or ["i:ann-7731", "e:ann-7731@example.com"],
    )
    return view.id


async def test_the_record_keeps_a_salted_hash_never_the_identifiers(store: ControlStore) -> None:
    repository = PrivacyRepository(store.engine, clock=FakeClock())
    first = await repository.requests.get(await new(repository))
    second = await repository.requests.get(await new(repository, ["e:ann-7731@example.com", "i:ann-7731"]))
    other = await repository.requests.get(await new(repository, ["i:bob"]))
    assert first.subject_hash == second.subject_hash != other.subject_hash
    assert first.subject_hash is not None and len(first.subject_hash) == 64
    assert first.retain_until - first.received_at == dt.timedelta(days=730)
    async with store.engine.connect() as connection:
        rows = (await connection.execute(select(PrivacyRequestRow))).all()
        audit = (await connection.execute(select(PrivacyAuditRow))).all()
    assert "7731" not in repr(rows) + repr(audit)


async def test_leases_keep_workers_apart_and_expire(store: ControlStore) -> None:
    clock = FakeClock()
    repository = PrivacyRepository(store.engine, clock=clock)
    request_id = await new(repository)
    assert [v.id for v in await repository.leases.claim(owner="w1", lease_s=60, limit=10)] == [request_id]
    assert await repository.leases.claim(owner="w2", lease_s=60, limit=10) == []
    with pytest.raises(RequestConflict):
        await repository.leases.complete(request_id, owner="w2", progress={}, verification=None)
    assert await repository.leases.save_many(
        [ProgressUpdate(request_id, {"phase": "erase"})], owner="w2"
    ) == {request_id}
    clock.advance(seconds=61)
    assert [v.id for v in await repository.leases.claim(owner="w2", lease_s=60, limit=10)] == [request_id]
    assert await repository.leases.save_many(
        [ProgressUpdate(request_id, {"phase": "erase"})], owner="w1"
    ) == {request_id}
    await repository.leases.save_many(
        [
            ProgressUpdate(
                request_id, {"phase": "verify"}, status="in_progress", actions=[("x", "s", {"n": 1})]
            )
        ],
        owner="w2",
    )
    assert (await repository.requests.get(request_id)).progress == {"phase": "verify"}
    await repository.leases.complete(
        request_id, owner="w2", progress={"phase": "completed"}, verification={"ok": 1}
    )
    done = await repository.requests.get(request_id)
    assert done.status == "completed" and done.verification == {"ok": 1}
    assert await repository.working_sets.get(request_id) is None
    assert [e["action"] for e in await repository.audit.trail(request_id)] == ["received", "x", "completed"]


async def test_records_and_audit_are_purged_after_24_months(store: ControlStore) -> None:
    clock = FakeClock()
    repository = PrivacyRepository(store.engine, clock=clock)
    old = await new(repository)
    clock.advance(days=400)
    recent = await new(repository)
    await repository.suppressions.add(account_id="ACC-1", request_id=recent, keys=["i:ann"], days=30)
    clock.advance(days=331)
    purged = await repository.retention.purge_expired()
    assert purged["requests"] == 1 and purged["suppressions"] == 1 and purged["audit"] >= 1
    assert [v.id for v in await repository.requests.of_account(account_id="ACC-1")] == [recent]
    async with store.engine.connect() as connection:
        left = await connection.scalar(
            select(func.count()).select_from(PrivacyAuditRow).where(PrivacyAuditRow.request_id == old)
        )
    assert left == 0


async def test_deployment_secret_is_created_once(store: ControlStore) -> None:
    first = await PrivacyRepository(store.engine, clock=FakeClock()).secrets.identifier_salt()
    second = await PrivacyRepository(store.engine, clock=FakeClock()).secrets.identifier_salt()
    assert first == second and len(first) == 32
    assert await PrivacyRepository(store.engine, clock=FakeClock()).secrets.link_key() != first


async def test_the_audit_trail_is_append_only(store: ControlStore) -> None:
    repository = PrivacyRepository(store.engine, clock=FakeClock())
    request_id = await new(repository)
    with pytest.raises(DBAPIError, match="append-only"):
        async with store.engine.begin() as connection:
            await connection.execute(update(PrivacyAuditRow).values(action="rewritten"))
    assert [e["action"] for e in await repository.audit.trail(request_id)] == ["received"]


async def test_a_failed_request_is_requeued_once(store: ControlStore, store_url: str) -> None:
    repository = PrivacyRepository(store.engine, clock=FakeClock())
    request_id = await new(repository)
    async with store.engine.begin() as connection:
        await connection.execute(
            update(PrivacyRequestRow)
            .where(PrivacyRequestRow.id == request_id)
            .values(
                status="failed",
                attempts=30,
                next_run_at=None,
                progress={
                    "phase": "erase",
                    "stores": {"warehouse.events": {"state": "pending", "error": "X"}},
                },
            )
        )
    if store_url.startswith("postgresql"):
        # Two operators at once: the row lock lets one re-queue it; the other sees it queued.
        outcomes = await asyncio.gather(
            repository.requests.requeue(account_id="ACC-1", request_id=request_id),
            repository.requests.requeue(account_id="ACC-1", request_id=request_id),
        )
    else:
        outcomes = (
            await repository.requests.requeue(account_id="ACC-1", request_id=request_id),
            await repository.requests.requeue(account_id="ACC-1", request_id=request_id),
        )
    assert sorted(requeued for _, requeued in outcomes) == [False, True]
    view = await repository.requests.get(request_id)
    assert view.status == "in_progress" and view.attempts == 0 and view.next_run_at is not None
    assert view.progress["stores"]["warehouse.events"] == {"state": "pending", "attempts": 0}
    trail = await repository.audit.trail(request_id)
    assert [e["detail"] for e in trail if e["action"] == "requeued"] == [
        {"previous_attempts": 30, "failed_at": ["warehouse.events"]}
    ]
    with pytest.raises(RequestNotFound):
        await repository.requests.requeue(account_id="ACC-2", request_id=request_id)


async def test_open_requests_are_read_a_page_at_a_time(store: ControlStore) -> None:
    repository = PrivacyRepository(store.engine, clock=FakeClock())
    ids = {await new(repository) for _ in range(5)}
    done = await new(repository)
    await repository.requests.deny(account_id="ACC-1", request_id=done, basis="not verified")
    pages = [[view.id for view in page] async for page in repository.requests.open_pages(size=2)]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert {rid for page in pages for rid in page} == ids

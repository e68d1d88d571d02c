"""Count jobs shared through the control store: any replica answers a ``req_id``; leases, keep time, bounds.

Two ``QueryJobs`` on one SQLite control store stand for two query replicas; the integration suite runs two
``tapwire serve query`` processes on PostgreSQL (``tests/query/test_query_replicas.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tapwire_core.control.store import ControlStore
from tapwire_core.http.errors import ApiError
from tapwire_query import jobs as jobs_module
from tapwire_query.jobs import JobState, QueryJobs


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ControlStore]:
    control = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}")
    await control.start()
    yield control
    await control.close()


async def settled(jobs: QueryJobs, account: str, req_id: int) -> JobState | None:
    for _ in range(500):
        state = await jobs.poll(account, req_id)
        if state is None or state.status != "running":
            return state
        await asyncio.sleep(0.01)
    raise AssertionError("the job's outcome was never stored")


async def test_a_job_started_on_one_replica_is_answered_by_another(store: ControlStore) -> None:
    first, second = QueryJobs(store), QueryJobs(store)
    release = asyncio.Event()

    async def count() -> dict[str, Any]:
        await release.wait()
        return {"count": 42}

    started = await first.run("A", count, wait_s=0)
    assert started.status == "running"
    polled = await second.poll("A", started.req_id)
    assert polled is not None and polled.status == "running"
    assert await second.poll("B", started.req_id) is None
    release.set()
    done = await settled(second, "A", started.req_id)
    assert done is not None and (done.status, done.value) == ("done", {"count": 42})


async def test_a_failure_is_answered_as_clients_see_it(store: ControlStore) -> None:
    first, second = QueryJobs(store), QueryJobs(store)

    async def unavailable() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        raise ApiError(503, "the warehouse is unavailable; retry later", retry_after=5)

    started = await first.run("A", unavailable, wait_s=0)
    failed = await settled(second, "A", started.req_id)
    assert failed is not None and failed.status == "failed"
    assert isinstance(failed.error, ApiError)
    assert (failed.error.status, failed.error.error, failed.error.retry_after) == (
        503,
        "the warehouse is unavailable; retry later",
        5,
    )


async def test_fast_jobs_are_answered_without_touching_the_store(store: ControlStore) -> None:
    jobs = QueryJobs(store)

    async def fast() -> dict[str, Any]:
        return {"count": 1}

    done = await jobs.run("A", fast, wait_s=5)
    assert (done.status, done.value) == ("done", {"count": 1})
    assert await QueryJobs(store).poll("A", done.req_id) is None


async def test_a_replica_that_dies_leaves_its_jobs_unknown_once_their_lease_ends(
    store: ControlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "RENEW_S", 0.05)
    clock = Clock()
    owner, other = QueryJobs(store, clock=clock), QueryJobs(store, clock=clock)
    never = asyncio.Event()

    async def stuck() -> dict[str, Any]:
        await never.wait()
        return {}

    started = await owner.run("A", stuck, wait_s=0)
    # While the owner lives it renews the lease: time passing does not lose the job.
    for _ in range(3):
        clock.now += jobs_module.LEASE_S - 5
        await asyncio.sleep(0.2)
        assert (await other.poll("A", started.req_id)) == JobState("running", started.req_id)
    # The owner dies without a word: its tasks stop, nothing renews the lease.
    for task in [*owner._recorders, *(task for _, task in owner._running.values())]:
        task.cancel()
    await asyncio.sleep(0.1)
    clock.now += jobs_module.LEASE_S + 1
    assert await other.poll("A", started.req_id) is None


async def test_answers_are_kept_for_the_keep_time_then_forgotten(store: ControlStore) -> None:
    clock = Clock()
    jobs = QueryJobs(store, keep_s=600, clock=clock)

    async def count() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"count": 3}

    started = await jobs.run("A", count, wait_s=0)
    assert (await settled(jobs, "A", started.req_id)) == JobState("done", started.req_id, value={"count": 3})
    clock.now += 599
    assert await jobs.poll("A", started.req_id) is not None
    clock.now += 2
    assert await jobs.poll("A", started.req_id) is None


async def test_an_answer_too_large_to_keep_is_kept_as_an_error_saying_so(
    store: ControlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "MAX_VALUE_BYTES", 1000)
    jobs = QueryJobs(store)

    async def top() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"g": {f"value-{i}": i for i in range(100)}}

    started = await jobs.run("A", top, wait_s=0)
    failed = await settled(jobs, "A", started.req_id)
    assert failed is not None and isinstance(failed.error, ApiError)
    assert failed.error.status == 422 and "too large to keep" in failed.error.error


async def test_an_account_keeps_a_bounded_number_of_answers(
    store: ControlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "MAX_KEPT", 3)
    clock = Clock()
    jobs = QueryJobs(store, clock=clock)

    async def count() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"count": 0}

    ids = []
    for _ in range(5):
        clock.now += 1
        started = await jobs.run("A", count, wait_s=0)
        await settled(jobs, "A", started.req_id)
        ids.append(started.req_id)
    kept = [req_id for req_id in ids if await jobs.poll("A", req_id) is not None]
    assert kept == ids[-3:]


async def test_a_client_that_leaves_during_the_wait_cancels_its_job(store: ControlStore) -> None:
    jobs = QueryJobs(store)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow() -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    waiting = asyncio.ensure_future(jobs.run("A", slow, wait_s=30))
    await started.wait()
    waiting.cancel()
    await asyncio.wait_for(cancelled.wait(), 5)
    assert jobs._running == {}

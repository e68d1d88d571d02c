"""Cursor tokens: URL-safe, tamper-evident, expiring, bound to account and endpoint; count jobs; the generator."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tapwire_core.control.store import ControlStore
from tapwire_query.cursors import CursorCodec, CursorError, CursorState
from tapwire_query.jobs import JobState, QueryJobs, TooManyJobs
from tapwire_services import generate

NOW = 1_800_000_000.0


def state(codec: CursorCodec, **changes: Any) -> CursorState:
    base = CursorState(
        "events", "ACC-1", {"event_name": "x"}, 50, 1, [1, "e"], codec.expiry(), {"events": True}
    )
    return dataclasses.replace(base, **changes)


def test_round_trip_is_url_safe() -> None:
    codec = CursorCodec("s", ttl_s=60, clock=lambda: NOW)
    original = state(codec, query={"event_name": "ünïcødé ' \" {p0:String}"})
    token = codec.encode(original)
    assert all(c.isalnum() or c in "-_" for c in token)
    assert codec.decode(token, account_id="ACC-1", kind="events") == original


def test_every_flipped_character_is_detected() -> None:
    codec = CursorCodec("s", ttl_s=60, clock=lambda: NOW)
    token = codec.encode(state(codec))
    for i in range(len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(CursorError) as caught:
            codec.decode(flipped, account_id="ACC-1", kind="events")
        assert caught.value.status == 400


@pytest.mark.parametrize("token", ["", "!!!", "A", "AAAA" * 3, "_" * 40])
def test_garbage_is_refused(token: str) -> None:
    codec = CursorCodec("s", ttl_s=60)
    with pytest.raises(CursorError, match="not valid"):
        codec.decode(token, account_id="ACC-1", kind="events")


def test_expiry_account_endpoint_and_secret() -> None:
    now = [NOW]
    codec = CursorCodec("s", ttl_s=60, clock=lambda: now[0])
    token = codec.encode(state(codec))
    now[0] += 60
    codec.decode(token, account_id="ACC-1", kind="events")
    with pytest.raises(CursorError, match="another account") as foreign:
        codec.decode(token, account_id="ACC-2", kind="events")
    assert foreign.value.status == 403
    with pytest.raises(CursorError, match="another endpoint"):
        codec.decode(token, account_id="ACC-1", kind="profiles")
    now[0] += 1
    with pytest.raises(CursorError, match="expired"):
        codec.decode(token, account_id="ACC-1", kind="events")
    with pytest.raises(CursorError, match="not valid"):
        CursorCodec("other", ttl_s=60).decode(token, account_id="ACC-1", kind="events")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ControlStore]:
    control = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}")
    await control.start()
    yield control
    await control.close()


async def settled(jobs: QueryJobs, account: str, req_id: int) -> JobState | None:
    """The job's state once its outcome is stored (the owner writes it just after the work ends)."""
    for _ in range(500):
        state = await jobs.poll(account, req_id)
        if state is None or state.status != "running":
            return state
        await asyncio.sleep(0.01)
    return await jobs.poll(account, req_id)


async def test_jobs_answer_fast_work_at_once_and_slow_work_by_req_id(store: ControlStore) -> None:
    jobs = QueryJobs(store)

    async def fast() -> int:
        return 7

    done = await jobs.run("A", fast, wait_s=1)
    assert (done.status, done.value) == ("done", 7)

    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 9

    pending = await jobs.run("A", slow, wait_s=0)
    assert pending.status == "running"
    assert await jobs.poll("B", pending.req_id) is None
    polled = await jobs.poll("A", pending.req_id)
    assert polled is not None and polled.status == "running"
    release.set()
    polled = await settled(jobs, "A", pending.req_id)
    assert polled is not None and (polled.status, polled.value) == ("done", 9)

    async def broken() -> int:
        raise RuntimeError("boom")

    failed = await jobs.run("A", broken, wait_s=1)
    assert failed.status == "failed" and isinstance(failed.error, RuntimeError)


async def test_an_account_cannot_pile_up_background_jobs(store: ControlStore) -> None:
    jobs = QueryJobs(store, max_running=2)
    never = asyncio.Event()

    async def stuck() -> int:
        await never.wait()
        return 0

    first = await jobs.run("A", stuck, wait_s=0)
    await jobs.run("A", stuck, wait_s=0)
    with pytest.raises(TooManyJobs):
        await jobs.run("A", stuck, wait_s=0)
    assert (await jobs.run("B", stuck, wait_s=0)).status == "running"
    await jobs.close()
    assert await jobs.poll("A", first.req_id) is None


def test_generator_is_deterministic_and_seed_sensitive() -> None:
    first = [*generate.profiles(50, 1), *generate.events(50, 500, 1)]
    again = [*generate.profiles(50, 1), *generate.events(50, 500, 1)]
    other = [*generate.profiles(50, 2), *generate.events(50, 500, 2)]
    assert first == again and first != other
    names = {r["evtName"] for r in first if r["type"] == "event"}
    assert names == set(generate.EVENT_NAMES)
    assert all(0 <= r["ts"] - generate.BASE_TS < 30 * generate.DAY_S for r in first)
    charged = [r for r in first if r.get("evtName") == "Charged"]
    assert charged and all(r["evtData"]["Items"] for r in charged)

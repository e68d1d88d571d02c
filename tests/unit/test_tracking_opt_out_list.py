"""The gateway's copy of the opt-out list: reloaded when stale, by one request while the others go on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.store import ControlStore
from tapwire_core.control.tracking_opt_outs import TrackingOptOutList, lift_opt_out, record_opt_out
from tests.credentials import LOOKUP_DIGESTS


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_reloads_when_stale_and_others_do_not_wait(tmp_path: Path) -> None:
    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    await store.upsert_account(
        "ACC-1", passcode="passcode-0123456789", write_key="writekey-0123456789", region="eu1"
    )
    clock = Clock()
    opt_outs = TrackingOptOutList(store.engine, refresh_s=5, clock=clock)
    try:
        await opt_outs.fresh()
        assert not opt_outs.opted_out("ACC-1", ["o:dev-1"])
        async with AsyncSession(store.engine) as session, session.begin():
            await record_opt_out(session, account_id="ACC-1", keys=["o:dev-1"], at=datetime.now(UTC))
        await opt_outs.fresh()
        assert not opt_outs.opted_out("ACC-1", ["o:dev-1"]), "reloaded before it was stale"
        clock.now = 6
        async with opt_outs._lock:  # another request is reloading: this one goes on at once
            await asyncio.wait_for(opt_outs.fresh(), 1)
            assert not opt_outs.opted_out("ACC-1", ["o:dev-1"])
        await opt_outs.fresh()
        assert opt_outs.opted_out("ACC-1", ["o:dev-1"]) and not opt_outs.opted_out("ACC-2", ["o:dev-1"])
    finally:
        await store.close()


async def test_updates_read_only_what_changed_lifts_included(tmp_path: Path) -> None:
    """Another replica lists and lifts keys: this one's updates read those rows, not the whole list again, until
    its periodic full reload; a lift reaches it like an opt-out."""
    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    await store.upsert_account(
        "ACC-1", passcode="passcode-0123456789", write_key="writekey-0123456789", region="eu1"
    )
    clock = Clock()
    opt_outs = TrackingOptOutList(store.engine, refresh_s=5, full_reload_s=600, clock=clock)
    earlier = datetime.now(UTC) - timedelta(hours=1)
    try:
        async with AsyncSession(store.engine) as session, session.begin():
            await record_opt_out(
                session, account_id="ACC-1", keys=[f"o:old-{n}" for n in range(500)], at=earlier
            )
        await opt_outs.fresh()
        assert opt_outs.rows_read == 500 and opt_outs.opted_out("ACC-1", ["o:old-7"])

        async with AsyncSession(store.engine) as session, session.begin():
            await record_opt_out(session, account_id="ACC-1", keys=["o:new"], at=datetime.now(UTC))
            await lift_opt_out(session, account_id="ACC-1", keys=["o:old-7"])
        clock.now = 6
        await opt_outs.fresh()
        assert opt_outs.rows_read == 2
        assert opt_outs.opted_out("ACC-1", ["o:new"]) and opt_outs.opted_out("ACC-1", ["o:old-8"])
        assert not opt_outs.opted_out("ACC-1", ["o:old-7"])

        # Listed again after the lift: the same row, changed again.
        async with AsyncSession(store.engine) as session, session.begin():
            await record_opt_out(session, account_id="ACC-1", keys=["o:old-7"], at=datetime.now(UTC))
        clock.now = 12
        await opt_outs.fresh()
        assert opt_outs.opted_out("ACC-1", ["o:old-7"]) and opt_outs.rows_read == 2

        clock.now = 700
        await opt_outs.fresh()
        assert opt_outs.rows_read == 501, "the periodic full reload reads every listed key"
    finally:
        await store.close()


async def test_a_lift_is_kept_a_day_as_a_mark_then_deleted(tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from tapwire_core.control.tracking_opt_outs import TrackingOptOutRow

    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    await store.upsert_account(
        "ACC-1", passcode="passcode-0123456789", write_key="writekey-0123456789", region="eu1"
    )
    long_ago = datetime.now(UTC) - timedelta(days=3)
    try:
        async with AsyncSession(store.engine) as session, session.begin():
            await record_opt_out(session, account_id="ACC-1", keys=["o:a", "o:b"], at=long_ago)
            await lift_opt_out(session, account_id="ACC-1", keys=["o:a"], at=long_ago)
            await lift_opt_out(session, account_id="ACC-1", keys=["o:b"])
        async with AsyncSession(store.engine) as session:
            rows = await session.scalar(select(func.count()).select_from(TrackingOptOutRow))
        assert rows == 1, "the lift of three days ago is gone, today's stays as a mark"
    finally:
        await store.close()

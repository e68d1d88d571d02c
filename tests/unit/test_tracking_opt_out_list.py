"""The gateway's copy of the opt-out list: reloaded when stale, by one request while the others go on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.store import ControlStore
from tapwire_core.control.tracking_opt_outs import TrackingOptOutList, record_opt_out
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

"""Users' positions in journeys, claimed under leases like outbox rows, and their per-step history.

A runner claims due positions (active ones whose step is due, waiting ones whose wait is over, and those whose
claimant's lease ran out), and writes each step's outcome with :meth:`JourneyPositions.advance` in one
transaction: the position's new step and status, and the step's history rows. ``advance`` changes a position
only while the runner still holds it and it is still open, so a position exited meanwhile (objection, erasure,
goal) stays exited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.messaging.journey_exits import OPEN_STATUSES
from tapwire_core.control.messaging.journey_models import JourneyHistoryRow, JourneyPositionRow


@dataclass(frozen=True, slots=True)
class NewPosition:
    journey_id: int
    version: int
    account_id: str
    user_key: str
    entry: str
    step: str
    due_ms: int


@dataclass(frozen=True, slots=True)
class ClaimedPosition:
    id: int
    journey_id: int
    version: int
    account_id: str
    user_key: str
    entry: str
    step: str
    status: str
    due_ms: int
    entered_ms: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    step: str
    action: str
    detail: str | None = None


class JourneyPositions:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def enter(self, positions: Sequence[NewPosition], *, now_ms: int) -> None:
        """Add positions; an entry that exists (same journey, user and entry) is left as it is."""
        if not positions:
            return
        statement = self._insert(JourneyPositionRow).on_conflict_do_nothing(
            index_elements=["journey_id", "user_key", "entry"]
        )
        async with self.engine.begin() as connection:
            await connection.execute(
                statement,
                [
                    {
                        "journey_id": p.journey_id,
                        "version": p.version,
                        "account_id": p.account_id,
                        "user_key": p.user_key,
                        "entry": p.entry[:64],
                        "step": p.step,
                        "status": "active",
                        "due_ms": p.due_ms,
                        "entered_ms": now_ms,
                        "updated_ms": now_ms,
                    }
                    for p in positions
                ],
            )

    async def claim(self, *, worker: str, now_ms: int, lease_ms: int, limit: int) -> list[ClaimedPosition]:
        candidates = (
            select(JourneyPositionRow.id)
            .where(
                JourneyPositionRow.status.in_(OPEN_STATUSES),
                JourneyPositionRow.due_ms <= now_ms,
                or_(JourneyPositionRow.lease_until_ms.is_(None), JourneyPositionRow.lease_until_ms < now_ms),
            )
            .order_by(JourneyPositionRow.due_ms)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(JourneyPositionRow)
            .where(JourneyPositionRow.id.in_(candidates.scalar_subquery()))
            .values(claimed_by=worker, lease_until_ms=now_ms + lease_ms)
            .returning(
                JourneyPositionRow.id,
                JourneyPositionRow.journey_id,
                JourneyPositionRow.version,
                JourneyPositionRow.account_id,
                JourneyPositionRow.user_key,
                JourneyPositionRow.entry,
                JourneyPositionRow.step,
                JourneyPositionRow.status,
                JourneyPositionRow.due_ms,
                JourneyPositionRow.entered_ms,
            )
        )
        async with self.engine.begin() as connection:
            rows = (await connection.execute(statement)).all()
        return sorted((ClaimedPosition(**row._mapping) for row in rows), key=lambda p: (p.due_ms, p.id))

    async def advance(
        self,
        position: ClaimedPosition,
        *,
        worker: str,
        step: str,
        status: str,
        due_ms: int,
        history: Sequence[HistoryEntry],
        now_ms: int,
        release: bool,
        detail: str | None = None,
    ) -> bool:
        """Move the position to ``step``/``status`` and record ``history``, while ``worker`` holds it and it is
        open. ``release`` gives the claim back (a wait, or the journey's end). False when it was no longer ours
        or no longer open: then nothing is written."""
        values: dict[str, Any] = {"step": step, "status": status, "due_ms": due_ms, "updated_ms": now_ms}
        if release:
            values |= {"claimed_by": None, "lease_until_ms": None}
        if detail is not None:
            values["detail"] = detail[:200]
        async with self.engine.begin() as connection:
            changed = await connection.execute(
                update(JourneyPositionRow)
                .where(
                    JourneyPositionRow.id == position.id,
                    JourneyPositionRow.claimed_by == worker,
                    JourneyPositionRow.status.in_(OPEN_STATUSES),
                )
                .values(**values)
            )
            if not changed.rowcount:
                return False
            if history:
                await connection.execute(
                    self._insert(JourneyHistoryRow).on_conflict_do_nothing(
                        index_elements=["position_id", "step", "action"]
                    ),
                    [
                        {
                            "position_id": position.id,
                            "journey_id": position.journey_id,
                            "step": h.step,
                            "action": h.action,
                            "detail": h.detail,
                            "ts_ms": now_ms,
                        }
                        for h in history
                    ],
                )
        return True

    async def renew(self, ids: Sequence[int], *, worker: str, until_ms: int) -> None:
        """Extend the lease of the positions ``worker`` still holds among ``ids``."""
        if not ids:
            return
        async with self.engine.begin() as connection:
            await connection.execute(
                update(JourneyPositionRow)
                .where(JourneyPositionRow.id.in_(list(ids)), JourneyPositionRow.claimed_by == worker)
                .values(lease_until_ms=until_ms)
            )

    async def still_ours(self, position: ClaimedPosition, *, worker: str) -> bool:
        """Whether ``worker`` still holds the position and it is open (checked before a send)."""
        async with self.engine.connect() as connection:
            found = await connection.execute(
                select(JourneyPositionRow.id).where(
                    JourneyPositionRow.id == position.id,
                    JourneyPositionRow.claimed_by == worker,
                    JourneyPositionRow.status.in_(OPEN_STATUSES),
                )
            )
            return found.first() is not None

    async def convert(
        self,
        *,
        account_id: str,
        user_keys: Sequence[str],
        journeys: Sequence[tuple[int, int]],
        done_ms: int,
        reason: str,
    ) -> int:
        """The user (any of ``user_keys``) did the goal of (journey, version) pairs: their open positions there
        end ``converted``."""
        if not journeys:
            return 0
        pairs = or_(
            *(and_(JourneyPositionRow.journey_id == j, JourneyPositionRow.version == v) for j, v in journeys)
        )
        async with self.engine.begin() as connection:
            ended = (
                await connection.execute(
                    update(JourneyPositionRow)
                    .where(
                        JourneyPositionRow.account_id == account_id,
                        JourneyPositionRow.user_key.in_(list(user_keys)),
                        JourneyPositionRow.status.in_(OPEN_STATUSES),
                        JourneyPositionRow.entered_ms <= done_ms,
                        pairs,
                    )
                    .values(status="converted", detail=reason[:200], updated_ms=done_ms, claimed_by=None)
                    .returning(JourneyPositionRow.id, JourneyPositionRow.journey_id, JourneyPositionRow.step)
                )
            ).all()
            if ended:
                await connection.execute(
                    self._insert(JourneyHistoryRow).on_conflict_do_nothing(
                        index_elements=["position_id", "step", "action"]
                    ),
                    [
                        {
                            "position_id": pid,
                            "journey_id": jid,
                            "step": step,
                            "action": "converted",
                            "detail": reason[:200],
                            "ts_ms": done_ms,
                        }
                        for pid, jid, step in ended
                    ],
                )
        return len(ended)

    async def step_counts(self, journey_id: int) -> dict[str, dict[str, int]]:
        """step → entered (positions that reached it), waiting (at it now), exited and converted (ended there:
        ``exited`` counts completed and exited positions)."""
        counts: dict[str, dict[str, int]] = {}

        def bump(step: str, kind: str, n: int) -> None:
            row = counts.setdefault(step, {"entered": 0, "waiting": 0, "exited": 0, "converted": 0})
            row[kind] += n

        async with self.engine.connect() as connection:
            entered = await connection.execute(
                select(JourneyHistoryRow.step, func.count())
                .where(JourneyHistoryRow.journey_id == journey_id, JourneyHistoryRow.action == "entered")
                .group_by(JourneyHistoryRow.step)
            )
            for step, n in entered.all():
                bump(str(step), "entered", int(n))
            ended = await connection.execute(
                select(JourneyPositionRow.step, JourneyPositionRow.status, func.count())
                .where(JourneyPositionRow.journey_id == journey_id)
                .group_by(JourneyPositionRow.step, JourneyPositionRow.status)
            )
            for step, status, n in ended.all():
                kind = {
                    "waiting": "waiting",
                    "converted": "converted",
                    "completed": "exited",
                    "exited": "exited",
                }
                if str(status) in kind:
                    bump(str(step), kind[str(status)], int(n))
        return counts

    async def history(self, journey_id: int, user_key: str) -> list[dict[str, Any]]:
        """The user's positions in the journey, each with its steps in order."""
        async with self.engine.connect() as connection:
            positions = (
                await connection.execute(
                    select(JourneyPositionRow)
                    .where(
                        JourneyPositionRow.journey_id == journey_id, JourneyPositionRow.user_key == user_key
                    )
                    .order_by(JourneyPositionRow.id)
                )
            ).all()
            out = []
            for p in positions:
                steps = (
                    await connection.execute(
                        select(JourneyHistoryRow)
                        .where(JourneyHistoryRow.position_id == p.id)
                        .order_by(JourneyHistoryRow.id)
                    )
                ).all()
                out.append(
                    {
                        "entry": p.entry,
                        "version": p.version,
                        "status": p.status,
                        "step": p.step,
                        "detail": p.detail,
                        "entered_ms": p.entered_ms,
                        "history": [
                            {"step": h.step, "action": h.action, "detail": h.detail, "ts_ms": h.ts_ms}
                            for h in steps
                        ],
                    }
                )
        return out

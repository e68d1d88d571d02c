"""The trigger timers table: written by the evaluator, claimed under leases and finished by the timer runner.

Claiming is the outbox's statement (``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``):
concurrent runners skip each other's rows on PostgreSQL and take turns under SQLite's write lock. A runner that
dies leaves its claimed rows to be claimed again once their lease runs out; firing a timer twice writes the
same outbox rows (same keys), so the message still leaves once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.messaging.trigger_models import TriggerTimerRow

_TIMERS: Table = TriggerTimerRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class NewTimer:
    campaign_id: int
    account_id: str
    user_key: str
    firing: str
    event: Mapping[str, Any]
    trigger_ms: int
    due_ms: int


@dataclass(frozen=True, slots=True)
class Cancellation:
    """The user did ``campaign_ids``' abandonment event at ``done_ms``: their timers (under any of their
    ``user_keys``) started at or before it are cancelled."""

    account_id: str
    user_keys: tuple[str, ...]
    campaign_ids: tuple[int, ...]
    done_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class ClaimedTimer:
    id: int
    campaign_id: int
    account_id: str
    user_key: str
    firing: str
    event: dict[str, Any]
    trigger_ms: int
    due_ms: int


@dataclass(frozen=True, slots=True)
class TimerOutcome:
    id: int
    status: str
    """``fired``, ``skipped``, ``cancelled``, or ``waiting`` to hand the row back unfired."""
    detail: str | None = None


class TriggerTimers:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def add(self, timers: Sequence[NewTimer], cancellations: Sequence[Cancellation]) -> None:
        """Write new timers (one that exists is left as it is), then apply cancellations, in one transaction
        (a timer and the event that cancels it may come in the same batch)."""
        if not timers and not cancellations:
            return
        async with self.engine.begin() as connection:
            if timers:
                statement = self._insert(TriggerTimerRow).on_conflict_do_nothing(
                    index_elements=["campaign_id", "user_key", "firing"]
                )
                await connection.execute(
                    statement,
                    [
                        {
                            "campaign_id": t.campaign_id,
                            "account_id": t.account_id,
                            "user_key": t.user_key,
                            "firing": t.firing,
                            "event": dict(t.event),
                            "trigger_ms": t.trigger_ms,
                            "due_ms": t.due_ms,
                            "status": "waiting",
                        }
                        for t in timers
                    ],
                )
            for cancel in cancellations:
                await connection.execute(
                    update(TriggerTimerRow)
                    .where(
                        TriggerTimerRow.account_id == cancel.account_id,
                        TriggerTimerRow.user_key.in_(list(cancel.user_keys)),
                        TriggerTimerRow.campaign_id.in_(list(cancel.campaign_ids)),
                        TriggerTimerRow.status == "waiting",
                        TriggerTimerRow.trigger_ms <= cancel.done_ms,
                    )
                    .values(status="cancelled", detail=cancel.reason[:200], finished_ms=cancel.done_ms)
                )

    async def claim(self, *, worker: str, now_ms: int, lease_ms: int, limit: int) -> list[ClaimedTimer]:
        """Claim up to ``limit`` timers: first those whose claimant's lease ran out, then due waiting ones,
        earliest due first."""
        expired = (
            select(TriggerTimerRow.id)
            .where(TriggerTimerRow.status == "firing", TriggerTimerRow.lease_until_ms < now_ms)
            .order_by(TriggerTimerRow.due_ms)
        )
        due = (
            select(TriggerTimerRow.id)
            .where(TriggerTimerRow.status == "waiting", TriggerTimerRow.due_ms <= now_ms)
            .order_by(TriggerTimerRow.due_ms)
        )
        claimed: list[ClaimedTimer] = []
        async with self.engine.begin() as connection:
            for candidates in (expired, due):
                room = limit - len(claimed)
                if room <= 0:
                    break
                statement = (
                    update(TriggerTimerRow)
                    .where(
                        TriggerTimerRow.id.in_(
                            candidates.limit(room).with_for_update(skip_locked=True).scalar_subquery()
                        )
                    )
                    .values(status="firing", lease_until_ms=now_ms + lease_ms, claimed_by=worker)
                    .returning(
                        TriggerTimerRow.id,
                        TriggerTimerRow.campaign_id,
                        TriggerTimerRow.account_id,
                        TriggerTimerRow.user_key,
                        TriggerTimerRow.firing,
                        TriggerTimerRow.event,
                        TriggerTimerRow.trigger_ms,
                        TriggerTimerRow.due_ms,
                    )
                )
                claimed += [
                    ClaimedTimer(**row._mapping) for row in (await connection.execute(statement)).all()
                ]
        return sorted(claimed, key=lambda t: (t.due_ms, t.id))

    async def finish(self, outcomes: Sequence[TimerOutcome], *, worker: str, now_ms: int) -> None:
        """Write each claimed timer's outcome, only while ``worker`` still holds it."""
        if not outcomes:
            return
        table = _TIMERS
        async with self.engine.begin() as connection:
            await connection.execute(
                update(table)
                .where(
                    table.c.id == bindparam("row_id"),
                    table.c.claimed_by == worker,
                    table.c.status == "firing",
                )
                .values(
                    status=bindparam("new_status"),
                    detail=bindparam("new_detail"),
                    finished_ms=bindparam("new_finished_ms"),
                    lease_until_ms=None,
                ),
                [
                    {
                        "row_id": o.id,
                        "new_status": o.status,
                        "new_detail": o.detail,
                        "new_finished_ms": None if o.status == "waiting" else now_ms,
                    }
                    for o in outcomes
                ],
            )

    async def fired_since(self, campaign_id: int, user_keys: Iterable[str], since_ms: int) -> dict[str, int]:
        """user key → timers of the campaign fired at or after ``since_ms``."""
        keys = sorted(set(user_keys))
        if not keys:
            return {}
        statement = (
            select(TriggerTimerRow.user_key, func.count())
            .where(
                TriggerTimerRow.campaign_id == campaign_id,
                TriggerTimerRow.user_key.in_(keys),
                TriggerTimerRow.status == "fired",
                TriggerTimerRow.finished_ms >= since_ms,
            )
            .group_by(TriggerTimerRow.user_key)
        )
        async with self.engine.connect() as connection:
            return {str(u): int(n) for u, n in (await connection.execute(statement)).all()}

    async def status_counts(self, campaign_id: int) -> dict[str, int]:
        """status → timers of the campaign (``waiting`` includes those being fired right now)."""
        statement = (
            select(TriggerTimerRow.status, func.count())
            .where(TriggerTimerRow.campaign_id == campaign_id)
            .group_by(TriggerTimerRow.status)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        counts: dict[str, int] = {}
        for status, count in rows:
            name = "waiting" if status == "firing" else str(status)
            counts[name] = counts.get(name, 0) + int(count)
        return counts

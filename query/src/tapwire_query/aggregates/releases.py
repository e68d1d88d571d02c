"""The ``aggregate_releases`` table: every anonymised aggregate released, remembered for the comparison window.

A release is recorded *before* it is compared with the earlier ones and deleted if the comparison refuses it:
of two requests racing on different replicas, the later to record always sees the other, so at least one of a
too-close pair is compared with the other. ``scope`` is the account id, or None for industry aggregates. Every
call may raise ``SQLAlchemyError`` when the control store is unreachable.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, insert, select

from tapwire_core.control.aggregate_release_models import AggregateReleaseRow
from tapwire_core.control.store import ControlStore

_TABLE: Table = AggregateReleaseRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class StoredRelease:
    """An earlier release: the request body as sent, its anchor date (YYYYMMDD) and its released cells."""

    id: str
    definition: Any
    anchor: str
    released: Any
    released_at: dt.datetime


def _scope(scope: str | None) -> ColumnElement[bool]:
    column = _TABLE.c.account_id
    return column.is_(None) if scope is None else column == scope


class ReleaseLedger:
    def __init__(self, store: ControlStore) -> None:
        self._store = store

    async def in_window(self, scope: str | None, *, since: dt.datetime) -> tuple[int, dt.datetime | None]:
        """How many releases of ``scope`` are in the window that started at ``since``, and the oldest's time."""
        async with self._store.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(func.count(), func.min(_TABLE.c.released_at)).where(
                        _scope(scope), _TABLE.c.released_at >= since
                    )
                )
            ).one()
        oldest = row[1]
        if oldest is not None and oldest.tzinfo is None:  # SQLite hands times back naive (they are UTC)
            oldest = oldest.replace(tzinfo=dt.UTC)
        return int(row[0]), oldest

    async def record(
        self, scope: str | None, *, definition: Any, anchor: str, released: Any, at: dt.datetime
    ) -> str:
        """Record a release; returns its id. Older releases are removed by ``purge``."""
        release_id = uuid.uuid4().hex
        async with self._store.engine.begin() as connection:
            await connection.execute(
                insert(_TABLE).values(
                    id=release_id,
                    account_id=scope,
                    definition=definition,
                    anchor=anchor,
                    released=released,
                    released_at=at,
                )
            )
        return release_id

    async def earlier(self, scope: str | None, *, since: dt.datetime, other_than: str) -> list[StoredRelease]:
        """``scope``'s releases in the window, except ``other_than``, oldest first."""
        async with self._store.engine.connect() as connection:
            rows = await connection.execute(
                select(_TABLE)
                .where(_scope(scope), _TABLE.c.released_at >= since, _TABLE.c.id != other_than)
                .order_by(_TABLE.c.released_at, _TABLE.c.id)
            )
            return [StoredRelease(r.id, r.definition, r.anchor, r.released, r.released_at) for r in rows]

    async def forget(self, release_id: str) -> None:
        async with self._store.engine.begin() as connection:
            await connection.execute(delete(_TABLE).where(_TABLE.c.id == release_id))

    async def purge(self, *, before: dt.datetime) -> None:
        """Delete every release older than ``before`` (past the comparison window)."""
        async with self._store.engine.begin() as connection:
            await connection.execute(delete(_TABLE).where(_TABLE.c.released_at < before))

"""Saved segments in the control store (PostgreSQL or SQLite), always read and written per account."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert, select

from tapwire_core.control.segment_models import SegmentRow
from tapwire_core.control.store import ControlStore

_TABLE: Table = SegmentRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Segment:
    id: str
    account_id: str
    name: str
    definition: dict[str, Any]
    created_at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        created = self.created_at if self.created_at.tzinfo else self.created_at.replace(tzinfo=dt.UTC)
        return {
            "id": self.id,
            "name": self.name,
            "definition": self.definition,
            "created_at": created.isoformat(),
        }


async def create_segment(
    store: ControlStore, *, account_id: str, name: str, definition: dict[str, Any]
) -> Segment:
    """Store a segment (the caller has validated ``definition``); returns it with its new id."""
    segment_id = secrets.token_hex(12)
    created = dt.datetime.now(dt.UTC)
    async with store.engine.begin() as connection:
        await connection.execute(
            insert(_TABLE).values(
                id=segment_id, account_id=account_id, name=name, definition=definition, created_at=created
            )
        )
    return Segment(segment_id, account_id, name, definition, created)


async def get_segment(store: ControlStore, *, account_id: str, segment_id: str) -> Segment | None:
    """The account's segment with that id; None when unknown or owned by another account."""
    async with store.engine.connect() as connection:
        row = (
            await connection.execute(
                select(_TABLE).where(_TABLE.c.id == segment_id, _TABLE.c.account_id == account_id)
            )
        ).first()
    if row is None:
        return None
    return Segment(row.id, row.account_id, row.name, dict(row.definition), row.created_at)


async def list_segments(store: ControlStore, *, account_id: str, limit: int = 500) -> list[Segment]:
    """The account's segments, newest first."""
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(_TABLE)
            .where(_TABLE.c.account_id == account_id)
            .order_by(_TABLE.c.created_at.desc(), _TABLE.c.id)
            .limit(limit)
        )
        return [Segment(r.id, r.account_id, r.name, dict(r.definition), r.created_at) for r in rows]

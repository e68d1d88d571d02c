"""Working sets (``privacy_request_subjects``): the personal data an open request needs to act on.

The identifiers a request names, those the identity closure found linked to them, and a rectification's new
values. This is the only privacy table with personal data; a request's row is deleted in the transaction that
completes or denies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.privacy.models import PrivacyRequestSubjectRow
from tapwire_privacy.repository.transactions import Transactions
from tapwire_privacy.stores.control_deletes import make_deletes_physical


@dataclass(frozen=True)
class WorkingSet:
    """The working set of an open request (personal data; never logged)."""

    identifiers: list[str]
    closure: list[str] | None
    payload: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: PrivacyRequestSubjectRow) -> WorkingSet:
        return cls(list(row.identifiers), None if row.closure is None else list(row.closure), row.payload)


class WorkingSets:
    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    @staticmethod
    def add(
        session: AsyncSession, request_id: str, identifiers: Sequence[str], payload: dict[str, Any] | None
    ) -> None:
        """Keep a new request's identifiers (and payload) in the caller's transaction."""
        session.add(
            PrivacyRequestSubjectRow(
                request_id=request_id, identifiers=list(identifiers), closure=None, payload=payload or {}
            )
        )

    @staticmethod
    async def held(session: AsyncSession, request_id: str) -> bool:
        return await session.get(PrivacyRequestSubjectRow, request_id) is not None

    @staticmethod
    async def drop(session: AsyncSession, request_ids: Sequence[str]) -> None:
        """Delete the working sets of finished requests in the caller's transaction."""
        await session.execute(
            delete(PrivacyRequestSubjectRow).where(PrivacyRequestSubjectRow.request_id.in_(request_ids))
        )

    async def discard(self, request_ids: Sequence[str]) -> None:
        """Delete the working sets of requests that will not read them again, in a transaction of their own, and
        leave no copy of them in the database's files."""
        if not request_ids:
            return
        async with self._tx.begin() as session:
            await self.drop(session, request_ids)
        await make_deletes_physical(self._tx.engine, [PrivacyRequestSubjectRow.__tablename__])

    @staticmethod
    async def set_closures(session: AsyncSession, closures: dict[str, list[str]]) -> None:
        """Store each request's closed set of keys (request id -> keys) in the caller's transaction."""
        if closures:
            await session.execute(
                update(PrivacyRequestSubjectRow),
                [{"request_id": rid, "closure": keys} for rid, keys in closures.items()],
            )

    async def get(self, request_id: str) -> WorkingSet | None:
        async with self._tx.begin() as session:
            row = await session.get(PrivacyRequestSubjectRow, request_id)
            return None if row is None else WorkingSet.of(row)

    async def get_many(self, request_ids: Sequence[str]) -> dict[str, WorkingSet]:
        """The working sets of several requests (missing ones left out), in one query."""
        async with self._tx.begin() as session:
            rows = await session.scalars(
                select(PrivacyRequestSubjectRow).where(PrivacyRequestSubjectRow.request_id.in_(request_ids))
            )
            return {row.request_id: WorkingSet.of(row) for row in rows}

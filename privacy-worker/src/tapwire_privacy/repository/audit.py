"""The audit log (``privacy_audit``): every action taken on a request, append-only, without personal data.

The table refuses updates and deletes other than the retention purge (a trigger on both databases), so an entry
once written is the record of what happened. Entries name stores and counts, never identifiers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.privacy.models import PrivacyAuditRow, PrivacyRequestRow
from tapwire_privacy.records import aware
from tapwire_privacy.repository.transactions import Transactions

AuditAction = tuple[str, str | None, dict[str, Any]]
"""One action as the worker reports it: (action, store or None, detail with counts)."""


class AuditLog:
    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def add(
        self,
        session: AsyncSession,
        row: PrivacyRequestRow,
        action: str,
        *,
        store: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Write an entry for ``row`` in the caller's transaction."""
        session.add(
            PrivacyAuditRow(
                request_id=row.id,
                account_id=row.account_id,
                at=self._tx.clock(),
                action=action,
                store=store,
                detail=detail or {},
            )
        )

    async def add_many(
        self, session: AsyncSession, entries: Sequence[tuple[str, str, AuditAction]], *, at: dt.datetime
    ) -> None:
        """Write (request id, account id, action) triples in the caller's transaction, as one statement."""
        if not entries:
            return
        await session.execute(
            insert(PrivacyAuditRow),
            [
                {
                    "request_id": request_id,
                    "account_id": account_id,
                    "at": at,
                    "action": action,
                    "store": store,
                    "detail": detail,
                }
                for request_id, account_id, (action, store, detail) in entries
            ],
        )

    async def trail(self, request_id: str) -> list[dict[str, Any]]:
        """The request's entries, oldest first: ``at`` (aware datetime), ``action``, ``store``, ``detail``."""
        async with self._tx.begin() as session:
            rows = await session.scalars(
                select(PrivacyAuditRow)
                .where(PrivacyAuditRow.request_id == request_id)
                .order_by(PrivacyAuditRow.id)
            )
            return [
                {"at": aware(r.at), "action": r.action, "store": r.store, "detail": dict(r.detail)}
                for r in rows
            ]

"""The audit log of console and admin actions: who did what to what, when, from where, with what outcome.

Entries hold the actor's email as it was; deleting a console user rewrites their entries to a placeholder, so
the log keeps the actions but not the person's address.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.console.models import AuditEntryRow
from tapwire_core.control.console.types import AuditEntry, aware

Clock = Callable[[], dt.datetime]
Outcome = Literal["ok", "refused", "failed"]
MAX_PAGE = 200


def _entry(row: AuditEntryRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        account_id=row.account_id,
        at=aware(row.at),
        actor=row.actor,
        role=row.role,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        client=row.client,
        detail=dict(row.detail or {}),
    )


class AuditLog:
    def __init__(self, engine: Callable[[], AsyncEngine], clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def record(
        self,
        account_id: str,
        *,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        outcome: Outcome = "ok",
        client: str = "",
        actor_user_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        async with self._engine().begin() as connection:
            await connection.execute(
                insert(AuditEntryRow).values(
                    account_id=account_id,
                    at=self._clock(),
                    actor=actor[:254],
                    actor_user_id=actor_user_id,
                    role=role[:16],
                    action=action[:120],
                    target=target[:500],
                    outcome=outcome,
                    client=client[:64],
                    detail=detail or {},
                )
            )

    async def page(
        self,
        account_id: str,
        *,
        limit: int = 50,
        before_id: int | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Newest first; ``before_id`` continues after the last entry of the previous page."""
        query = select(AuditEntryRow).where(AuditEntryRow.account_id == account_id)
        if before_id is not None:
            query = query.where(AuditEntryRow.id < before_id)
        if actor:
            query = query.where(AuditEntryRow.actor == actor)
        if action:
            query = query.where(AuditEntryRow.action.startswith(action, autoescape=True))
        query = query.order_by(AuditEntryRow.id.desc()).limit(max(1, min(limit, MAX_PAGE)))
        async with AsyncSession(self._engine()) as session:
            return [_entry(row) for row in await session.scalars(query)]

    async def of_user(self, account_id: str, user_id: int) -> list[AuditEntry]:
        async with AsyncSession(self._engine()) as session:
            rows = await session.scalars(
                select(AuditEntryRow)
                .where(AuditEntryRow.account_id == account_id, AuditEntryRow.actor_user_id == user_id)
                .order_by(AuditEntryRow.id)
            )
            return [_entry(row) for row in rows]

    async def forget_user(self, account_id: str, user_id: int) -> None:
        async with self._engine().begin() as connection:
            await connection.execute(
                update(AuditEntryRow)
                .where(AuditEntryRow.account_id == account_id, AuditEntryRow.actor_user_id == user_id)
                .values(actor=f"deleted user #{user_id}", actor_user_id=None)
            )

    async def erase_account(self, account_id: str) -> None:
        async with self._engine().begin() as connection:
            await connection.execute(delete(AuditEntryRow).where(AuditEntryRow.account_id == account_id))

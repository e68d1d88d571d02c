"""Privacy handler for behaviour-triggered campaigns' timers (``trigger_timers``, models in
``tapwire_core.control.messaging.trigger_models``).

A timer names the user (their key) and holds the triggering event's properties, so an erasure deletes the
subject's timers outright: a waiting one then never sends, and a finished one only mattered for the campaign's
frequency rule. A tenant-level scope deletes every timer of the account.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging.trigger_models import TriggerTimerRow
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.stores.messaging import _ControlHandler


class TriggerTimersHandler(_ControlHandler):
    table = TriggerTimerRow.__tablename__
    name = "control.trigger_timers"

    def _match(self, scope: Scope) -> ColumnElement[bool]:
        condition = TriggerTimerRow.account_id == scope.account_id
        if scope.keys is None:
            return condition
        return condition & TriggerTimerRow.user_key.in_(sorted(scope.keys))

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        # One batch: a subject has a handful of rows; a whole account's are read at once (not streamed yet).
        yield await self._exported(scope)

    async def _exported(self, scope: Scope) -> list[dict[str, Any]]:
        async with AsyncSession(self._engine) as session:
            rows = await session.scalars(
                select(TriggerTimerRow).where(self._match(scope)).order_by(TriggerTimerRow.id)
            )
            return [
                {
                    "campaign_id": r.campaign_id,
                    "user_key": r.user_key,
                    "event": r.event,
                    "trigger_ms": r.trigger_ms,
                    "due_ms": r.due_ms,
                    "status": r.status,
                }
                for r in rows
            ]

    async def erase(self, scopes: Sequence[Scope]) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            for scope in scopes:
                await session.execute(delete(TriggerTimerRow).where(self._match(scope)))

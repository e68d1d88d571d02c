"""Privacy handler for users' places in journeys (``journey_positions`` and their ``journey_history``, models in
``tapwire_core.control.messaging.journey_models``).

An erasure deletes the subject's positions and their history, which takes them out of every journey at once:
the journey runner only walks positions that exist. (An objection ends them ``exited`` as it is recorded; see
``tapwire_core.control.marketing_objections``.) Journeys and their versions are the customer's definitions and
name no end user. A tenant-level scope deletes every position of the account.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging.journey_models import JourneyHistoryRow, JourneyPositionRow
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.stores.control_deletes import make_deletes_physical
from tapwire_privacy.stores.messaging import _ControlHandler


class JourneyPositionsHandler(_ControlHandler):
    name = "control.journey_positions"
    table = JourneyPositionRow.__tablename__

    async def settle(self) -> None:
        """A position's history goes with it: both tables' deleted rows are made physical."""
        await make_deletes_physical(self._engine, [self.table, JourneyHistoryRow.__tablename__])

    def _match(self, scope: Scope) -> ColumnElement[bool]:
        condition = JourneyPositionRow.account_id == scope.account_id
        if scope.keys is None:
            return condition
        return condition & JourneyPositionRow.user_key.in_(sorted(scope.keys))

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        # One batch: a subject has a handful of rows; a whole account's are read at once (not streamed yet).
        yield await self._exported(scope)

    async def _exported(self, scope: Scope) -> list[dict[str, Any]]:
        async with AsyncSession(self._engine) as session:
            positions = list(
                await session.scalars(
                    select(JourneyPositionRow).where(self._match(scope)).order_by(JourneyPositionRow.id)
                )
            )
            out = []
            for p in positions:
                steps = await session.scalars(
                    select(JourneyHistoryRow)
                    .where(JourneyHistoryRow.position_id == p.id)
                    .order_by(JourneyHistoryRow.id)
                )
                out.append(
                    {
                        "journey_id": p.journey_id,
                        "version": p.version,
                        "user_key": p.user_key,
                        "step": p.step,
                        "status": p.status,
                        "entered_ms": p.entered_ms,
                        "history": [{"step": h.step, "action": h.action, "ts_ms": h.ts_ms} for h in steps],
                    }
                )
            return out

    async def erase(self, scopes: Sequence[Scope]) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            for scope in scopes:
                ids = select(JourneyPositionRow.id).where(self._match(scope))
                # History first: SQLite enforces the cascade only with foreign keys switched on.
                await session.execute(delete(JourneyHistoryRow).where(JourneyHistoryRow.position_id.in_(ids)))
                await session.execute(delete(JourneyPositionRow).where(self._match(scope)))

"""Taking a user out of every journey at once (an objection, an erasure): their open positions end ``exited``.

Lives beside the journey tables in libs so that the privacy worker and the consent API, which do not import the
messaging service, can call it. A position the journey runner holds at that moment is exited too; the runner
writes its step only while the position is still open, so it sends nothing further.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from tapwire_core.control.messaging.journey_models import JourneyPositionRow

OPEN_STATUSES = ("active", "waiting")


async def exit_journeys(
    engine: AsyncEngine | AsyncConnection | AsyncSession,
    *,
    account_id: str,
    user_keys: Iterable[str],
    reason: str,
    now_ms: int,
) -> int:
    """End every open position of ``user_keys`` in the account's journeys; the number ended. Given a connection
    or session, it runs in the caller's transaction."""
    keys = sorted(set(user_keys))
    if not keys:
        return 0
    statement = (
        update(JourneyPositionRow)
        .where(
            JourneyPositionRow.account_id == account_id,
            JourneyPositionRow.user_key.in_(keys),
            JourneyPositionRow.status.in_(OPEN_STATUSES),
        )
        .values(status="exited", detail=reason[:200], updated_ms=now_ms, claimed_by=None, lease_until_ms=None)
    )
    if isinstance(engine, AsyncSession):
        return int((await engine.execute(statement)).rowcount)  # type: ignore[attr-defined]
    if isinstance(engine, AsyncConnection):
        return int((await engine.execute(statement)).rowcount)
    async with engine.begin() as connection:
        return int((await connection.execute(statement)).rowcount)

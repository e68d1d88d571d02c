"""Console sessions: opened at sign-in, found by the token the browser's cookie carries, closed on sign-out,
on a password change (every session of that person) or after ``idle`` without a request. Sessions found are
kept for a few seconds in a ``SessionCache`` (see there for what that means for revocation)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import cast

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.console.models import ConsoleSessionRow, ConsoleUserRow
from tapwire_core.control.console.passwords import new_token, token_digest
from tapwire_core.control.console.roles import Role
from tapwire_core.control.console.session_cache import SessionCache
from tapwire_core.control.console.types import ConsoleSession, ConsoleUser, OpenedSession, aware
from tapwire_core.control.console.users import to_user

Clock = Callable[[], dt.datetime]
TOKEN_PREFIX = "tws"
# last_seen_at is written at most this often per session: a request is a read, not a write.
_TOUCH_EVERY = dt.timedelta(seconds=60)


class SessionStore:
    """The ``console_sessions`` table. A session lives until ``lifetime`` after sign-in and dies after ``idle``
    without a request, whichever comes first."""

    def __init__(
        self,
        engine: Callable[[], AsyncEngine],
        clock: Clock,
        *,
        idle: dt.timedelta,
        lifetime: dt.timedelta,
        cache: SessionCache | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.idle = idle
        self.lifetime = lifetime
        self.cache = cache if cache is not None else SessionCache(clock)

    async def open(self, account_id: str, *, role: Role, user: ConsoleUser | None) -> OpenedSession:
        token = new_token(TOKEN_PREFIX)
        now = self._clock()
        session = ConsoleSession(
            id=token_digest(token),
            account_id=account_id,
            role=role,
            user=user,
            created_at=now,
            expires_at=now + self.lifetime,
        )
        async with self._engine().begin() as connection:
            # Sessions that ended by time are purged here, so the table holds only live ones and the last day's.
            await connection.execute(
                delete(ConsoleSessionRow).where(
                    ConsoleSessionRow.account_id == account_id,
                    (ConsoleSessionRow.expires_at <= now)
                    | (ConsoleSessionRow.last_seen_at <= now - self.idle),
                )
            )
            await connection.execute(
                insert(ConsoleSessionRow).values(
                    id=session.id,
                    account_id=account_id,
                    user_id=None if user is None else user.id,
                    role=role,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=session.expires_at,
                )
            )
        return OpenedSession(session=session, token=token)

    async def resolve(self, token: str) -> ConsoleSession | None:
        """The live session of ``token``, else None (unknown, expired or idle too long). Never raises for a bad
        token; may raise SQLAlchemyError when the database is unreachable. A session read less than the cache's
        TTL ago is answered from the cache (its idle time is then not touched: the TTL is far below ``idle``)."""
        if not token.startswith(f"{TOKEN_PREFIX}_") or len(token) > 100:
            return None
        digest = token_digest(token)
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        async with AsyncSession(self._engine()) as orm:
            found = (
                await orm.execute(
                    select(ConsoleSessionRow, ConsoleUserRow)
                    .outerjoin(ConsoleUserRow, ConsoleUserRow.id == ConsoleSessionRow.user_id)
                    .where(ConsoleSessionRow.id == digest)
                )
            ).first()
        if found is None:
            return None
        row, user_row = found
        now = self._clock()
        last_seen = aware(row.last_seen_at)
        if aware(row.expires_at) <= now or last_seen + self.idle <= now:
            await self._delete(digest)
            return None
        if now - last_seen >= _TOUCH_EVERY:
            async with self._engine().begin() as connection:
                await connection.execute(
                    update(ConsoleSessionRow).where(ConsoleSessionRow.id == digest).values(last_seen_at=now)
                )
        session = ConsoleSession(
            id=digest,
            account_id=row.account_id,
            role=cast(Role, row.role),
            user=None if user_row is None else to_user(user_row),
            created_at=aware(row.created_at),
            expires_at=aware(row.expires_at),
        )
        self.cache.put(session)
        return session

    async def close(self, token: str) -> None:
        await self._delete(token_digest(token))

    async def close_passcode_sessions(self, account_id: str) -> int:
        """Close the sessions opened with a passcode (after the account's passcodes changed)."""
        async with self._engine().begin() as connection:
            removed = await connection.execute(
                delete(ConsoleSessionRow).where(
                    ConsoleSessionRow.account_id == account_id, ConsoleSessionRow.user_id.is_(None)
                )
            )
        self.cache.forget_passcode_sessions(account_id)
        return int(removed.rowcount or 0)

    async def _delete(self, digest: str) -> None:
        self.cache.forget(digest)
        async with self._engine().begin() as connection:
            await connection.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.id == digest))

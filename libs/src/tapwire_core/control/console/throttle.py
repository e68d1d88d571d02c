"""Sign-in throttling: failures counted per key in a window; too many lock the key for a while.

Two keys guard every attempt: the account and login (a person's account, whatever the address guessing it)
and the client address (one address guessing many logins). The counts live in the control store, so every
console replica sees the same ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.console.models import SignInThrottleRow
from tapwire_core.control.console.types import aware

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class ThrottleRule:
    failures: int
    window: dt.timedelta
    lockout: dt.timedelta


LOGIN_RULE = ThrottleRule(failures=5, window=dt.timedelta(minutes=15), lockout=dt.timedelta(minutes=15))
CLIENT_RULE = ThrottleRule(failures=30, window=dt.timedelta(minutes=15), lockout=dt.timedelta(minutes=15))


def login_key(account_id: str, login: str) -> str:
    return _key("login", account_id, login.strip().lower())


def client_key(client: str) -> str:
    return _key("client", client)


def _key(*parts: str) -> str:
    # Hashed: the throttle table holds no email addresses.
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


class SignInThrottle:
    def __init__(self, engine: Callable[[], AsyncEngine], clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def locked_for(self, keys: Sequence[str]) -> int | None:
        """Seconds until the first of ``keys`` unlocks, or None when none is locked."""
        now = self._clock()
        async with AsyncSession(self._engine()) as session:
            rows = await session.scalars(
                select(SignInThrottleRow).where(SignInThrottleRow.key.in_(list(keys)))
            )
            waits = [
                (aware(row.locked_until) - now).total_seconds()
                for row in rows
                if row.locked_until is not None and aware(row.locked_until) > now
            ]
        return math.ceil(max(waits)) if waits else None

    async def failed(self, rules: Sequence[tuple[str, ThrottleRule]]) -> None:
        """Count one failure against each key; a key reaching its rule's count is locked."""
        now = self._clock()
        longest = max((max(rule.window, rule.lockout) for _, rule in rules), default=dt.timedelta(0))
        async with AsyncSession(self._engine()) as session, session.begin():
            # Keys whose window and lockout are long over count nothing any more.
            await session.execute(
                delete(SignInThrottleRow).where(
                    SignInThrottleRow.window_started_at < now - longest,
                    (SignInThrottleRow.locked_until.is_(None)) | (SignInThrottleRow.locked_until < now),
                )
            )
            for key, rule in rules:
                row = await session.get(SignInThrottleRow, key)
                if row is None or aware(row.window_started_at) + rule.window <= now:
                    row = await session.merge(
                        SignInThrottleRow(key=key, failures=0, window_started_at=now, locked_until=None)
                    )
                row.failures += 1
                if row.failures >= rule.failures:
                    row.locked_until = now + rule.lockout
                    row.failures = 0
                    row.window_started_at = now

    async def succeeded(self, key: str) -> None:
        async with self._engine().begin() as connection:
            await connection.execute(delete(SignInThrottleRow).where(SignInThrottleRow.key == key))

"""Console sessions this process resolved recently, so a page's several API calls cost one control-store read.

A console page makes four or five API calls with the same session token, and every one of them used to read
the session (and its user) from the control store. An entry here is trusted for ``ttl`` (a few seconds): a
session ended *in this process* (sign-out, password change, admin reset, role change, user removed, passcode
rotated) is forgotten at once; one ended by another process (another service, the ``tapwire accounts`` CLI)
stops working here within ``ttl``. Only live sessions are kept, never a refusal, so a token signed in again
is not refused from the cache.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from tapwire_core.control.console.types import ConsoleSession

Clock = Callable[[], dt.datetime]
DEFAULT_TTL = dt.timedelta(seconds=5)
# Far more sessions than one process serves within a TTL; past it the oldest entries go first.
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    session: ConsoleSession
    fresh_until: dt.datetime


class SessionCache:
    """Token digest -> live session, each entry trusted until ``ttl`` after it was read. Never blocks."""

    def __init__(
        self, clock: Clock, *, ttl: dt.timedelta = DEFAULT_TTL, max_entries: int = MAX_ENTRIES
    ) -> None:
        self._clock = clock
        self.ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    def get(self, digest: str) -> ConsoleSession | None:
        """The session read less than ``ttl`` ago and not past its lifetime, else None."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        now = self._clock()
        if now >= entry.fresh_until or now >= entry.session.expires_at:
            del self._entries[digest]
            return None
        return entry.session

    def put(self, session: ConsoleSession) -> None:
        if self.ttl <= dt.timedelta(0):
            return
        self._entries.pop(session.id, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[session.id] = _Entry(session, self._clock() + self.ttl)

    def forget(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def forget_user(self, user_id: int) -> None:
        """Every session of the console user ``user_id`` (their sessions ended or their role changed)."""
        for digest in [d for d, e in self._entries.items() if e.session.user_id == user_id]:
            del self._entries[digest]

    def forget_passcode_sessions(self, account_id: str) -> None:
        for digest in [
            d
            for d, e in self._entries.items()
            if e.session.account_id == account_id and e.session.user is None
        ]:
            del self._entries[digest]

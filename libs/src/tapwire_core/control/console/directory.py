"""One object holding every console table of a control store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from tapwire_core.control.console.audit import AuditLog
from tapwire_core.control.console.session_cache import DEFAULT_TTL, SessionCache
from tapwire_core.control.console.sessions import SessionStore
from tapwire_core.control.console.throttle import SignInThrottle
from tapwire_core.control.console.users import UserStore
from tapwire_core.control.store import ControlStore


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ConsoleDirectory:
    """The console tables of one control store; the engine is read when used, so this may be built before the
    store starts."""

    def __init__(
        self,
        store: ControlStore,
        *,
        idle: dt.timedelta = dt.timedelta(minutes=30),
        lifetime: dt.timedelta = dt.timedelta(hours=12),
        clock: Callable[[], dt.datetime] = _utc_now,
        session_cache_ttl: dt.timedelta = DEFAULT_TTL,
    ) -> None:
        self.store = store
        self.clock = clock
        cache = SessionCache(clock, ttl=session_cache_ttl)
        self.users = UserStore(lambda: store.engine, clock, sessions=cache)
        self.sessions = SessionStore(lambda: store.engine, clock, idle=idle, lifetime=lifetime, cache=cache)
        self.throttle = SignInThrottle(lambda: store.engine, clock)
        self.audit = AuditLog(lambda: store.engine, clock)

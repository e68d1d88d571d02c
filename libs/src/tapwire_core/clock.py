"""Wall-clock time, injected: every service reads "now" through a :data:`Clock`, so tests set it by hand.

A clock returns a timezone-aware :class:`~datetime.datetime`. Code that keeps times as epoch milliseconds (the
outbox, consent records) converts with :func:`epoch_ms`. Intervals and timeouts are a different concept and use
``time.monotonic`` (or an injected ``Callable[[], float]`` of monotonic seconds), never a Clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def system_clock() -> datetime:
    """The system's wall clock, in UTC."""
    return datetime.now(UTC)


def epoch_ms(moment: datetime) -> int:
    """Whole milliseconds since the Unix epoch (rounded down), computed exactly rather than through a float."""
    return (moment - _EPOCH) // _MILLISECOND

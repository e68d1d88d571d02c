"""ISO-8601 timestamps of Segment messages and the ``sentAt`` clock-skew correction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
# What the warehouse's DateTime64(3) columns hold: 1900-01-01 up to 2299-12-31.
MIN_MS: Final = -2_208_988_800_000
MAX_MS: Final = 10_413_791_999_999


def parse_ms(value: Any) -> int | None:
    """Epoch milliseconds of an ISO-8601 string (``Z`` or ``±hh:mm``, any fraction digits), else None.

    A timestamp without an offset is read as UTC: the server cannot know the device's zone.
    """
    if type(value) is not str or not 10 <= len(value) <= 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def corrected_ms(*, original_ms: int | None, sent_ms: int | None, received_ms: int) -> int:
    """When the event happened on the server's clock: ``receivedAt - (sentAt - timestamp)``.

    ``sentAt`` and ``receivedAt`` describe the same instant, so their difference is the device's clock error.
    Without ``sentAt`` the client's timestamp is kept; without a timestamp the event happened on arrival.
    """
    if original_ms is None:
        return received_ms
    if sent_ms is None:
        return original_ms
    return received_ms - (sent_ms - original_ms)


def iso(ms: int) -> str:
    return (_EPOCH + ms * _MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""The shared clock and its conversion to the epoch milliseconds the outbox and consent records keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tapwire_core.clock import epoch_ms, system_clock


def test_epoch_ms_counts_whole_milliseconds() -> None:
    assert epoch_ms(datetime(2026, 3, 11, 7, 0, 0, 291_000, tzinfo=UTC)) == 1_773_212_400_291
    assert epoch_ms(datetime(2026, 3, 11, 7, 0, 0, 291_999, tzinfo=UTC)) == 1_773_212_400_291


def test_epoch_ms_does_not_depend_on_the_zone_and_floors_before_the_epoch() -> None:
    berlin = timezone(timedelta(hours=1))
    assert epoch_ms(datetime(1970, 1, 1, 1, 0, 0, 999, tzinfo=berlin)) == 0
    assert epoch_ms(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1


def test_the_system_clock_is_aware_and_in_utc() -> None:
    assert system_clock().utcoffset() == timedelta(0)

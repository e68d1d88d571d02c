"""When a journey's wait ends: a duration from now, or the next HH:MM on the user's wall clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tapwire_messaging.journeys.conditions import wait_over_ms
from tapwire_messaging.journeys.definition import WaitStep


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_a_duration_ends_that_long_after_now() -> None:
    step = WaitStep(type="wait", duration_s=90)
    assert wait_over_ms(step, None, now_ms=1_000) == 91_000


def test_until_is_today_when_still_ahead_and_tomorrow_when_past_in_the_users_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    step = WaitStep(type="wait", until="09:00", timezone="America/New_York")
    early = datetime(2026, 6, 1, 7, 30, tzinfo=paris)
    late = datetime(2026, 6, 1, 10, 0, tzinfo=paris)
    # The profile's zone wins over the step's.
    assert wait_over_ms(step, "Europe/Paris", now_ms=ms(early)) == ms(
        datetime(2026, 6, 1, 9, 0, tzinfo=paris)
    )
    assert wait_over_ms(step, "Europe/Paris", now_ms=ms(late)) == ms(datetime(2026, 6, 2, 9, 0, tzinfo=paris))


def test_until_falls_back_to_the_steps_zone_then_utc() -> None:
    step = WaitStep(type="wait", until="09:00", timezone="America/New_York")
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 08:00 in New York
    new_york = ZoneInfo("America/New_York")
    assert wait_over_ms(step, "Not/AZone", now_ms=ms(now)) == ms(datetime(2026, 6, 1, 9, 0, tzinfo=new_york))
    bare = WaitStep(type="wait", until="09:00")
    assert wait_over_ms(bare, None, now_ms=ms(now)) == ms(datetime(2026, 6, 2, 9, 0, tzinfo=UTC))


def test_until_across_a_daylight_saving_change_lands_on_the_wall_clock_time() -> None:
    paris = ZoneInfo("Europe/Paris")
    step = WaitStep(type="wait", until="09:00")
    # The evening before the clocks go forward (29 March 2026, 02:00 → 03:00).
    evening = datetime(2026, 3, 28, 20, 0, tzinfo=paris)
    assert wait_over_ms(step, "Europe/Paris", now_ms=ms(evening)) == ms(
        datetime(2026, 3, 29, 9, 0, tzinfo=paris)
    )

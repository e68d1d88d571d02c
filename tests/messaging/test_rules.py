"""Send-time rules with no database: stable assignment, MSG-* opt-outs, quiet hours on a fixed clock, throttling."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tapwire_messaging.rules import (
    QuietHours,
    TokenBucket,
    assign_variant,
    in_control_group,
    profile_opted_out,
)


def test_control_group_is_stable_and_near_its_percentage() -> None:
    users = [f"i:user{i}" for i in range(20_000)]
    held = [u for u in users if in_control_group(42, u, 10)]
    assert held == [u for u in users if in_control_group(42, u, 10)]
    assert 1_800 < len(held) < 2_200
    assert not any(in_control_group(42, u, 0) for u in users[:1000])
    assert set(held) != {u for u in users if in_control_group(43, u, 10)}  # per campaign, not per user


def test_variants_are_stable_and_follow_weights() -> None:
    variants = [("A", 3.0), ("B", 1.0)]
    assigned = [assign_variant(7, f"i:{i}", variants) for i in range(20_000)]
    assert assigned == [assign_variant(7, f"i:{i}", variants) for i in range(20_000)]
    assert 14_000 < assigned.count("A") < 16_000


@pytest.mark.parametrize(
    ("profile", "channel", "out"),
    [
        ({"MSG-email": False}, "email", True),
        ({"msg-EMAIL": "false"}, "email", True),
        ({"MSG-email": False}, "sms", False),
        ({"MSG-dndPhone": True}, "sms", True),
        ({"MSG-DNDwhatsapp": True}, "whatsapp", True),
        ({"MSG-push": True}, "push", False),
        ({}, "email", False),
    ],
)
def test_profile_subscription_flags(profile: dict[str, object], channel: str, out: bool) -> None:
    assert profile_opted_out(profile, channel) is out


def _at(zone: str, local: str) -> float:
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_quiet_hours_defer_to_the_end_of_the_window_in_the_users_zone() -> None:
    quiet = QuietHours.parse({"start": "22:00", "end": "08:00", "timezone": "UTC"})
    # 23:30 in Berlin is inside the window: resume at 08:00 Berlin time the next morning.
    now = _at("Europe/Berlin", "2026-03-10 23:30")
    assert quiet.resume_at(now, "Europe/Berlin") == _at("Europe/Berlin", "2026-03-11 08:00")
    # Same instant, a user in New York (17:30): not quiet.
    assert quiet.resume_at(now, "America/New_York") is None
    # No or unknown user zone: the campaign's zone (UTC, where it is 22:30).
    assert quiet.resume_at(now, None) == datetime(2026, 3, 11, 8, 0, tzinfo=UTC).timestamp()
    assert quiet.resume_at(now, "Mars/Olympus") == datetime(2026, 3, 11, 8, 0, tzinfo=UTC).timestamp()
    # Early morning, before the end: resume the same day.
    assert quiet.resume_at(_at("UTC", "2026-03-11 06:15"), None) == _at("UTC", "2026-03-11 08:00")


def test_quiet_hours_across_a_daylight_saving_change_end_at_wall_clock_time() -> None:
    quiet = QuietHours.parse({"start": "01:00", "end": "04:00", "timezone": "Europe/Berlin"})
    # 29 March 2026: Berlin skips 02:00-03:00; 01:30 is inside, the window still ends at 04:00 local.
    now = _at("Europe/Berlin", "2026-03-29 01:30")
    assert quiet.resume_at(now, None) == _at("Europe/Berlin", "2026-03-29 04:00")


@pytest.mark.parametrize(
    "spec", [{"start": "25:00", "end": "08:00"}, {"start": "22:00"}, {"start": "1", "end": "2"}]
)
def test_bad_quiet_hours_are_refused(spec: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="quiet_hours"):
        QuietHours.parse(spec)


def test_unknown_zone_in_quiet_hours_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        QuietHours.parse({"start": "22:00", "end": "08:00", "timezone": "Nowhere/Else"})


async def test_token_bucket_spaces_acquisitions_after_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(10):
        await bucket.acquire()  # the first second's burst
    assert slept == []
    await bucket.acquire()
    assert len(slept) == 1 and abs(slept[0] - 0.1) < 1e-9

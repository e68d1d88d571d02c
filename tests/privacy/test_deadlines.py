"""The legal clock: GDPR months with the end-of-month rule, CCPA days, extensions allowed and refused."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapwire_privacy.deadlines import (
    Deadlines,
    ExtensionRefused,
    add_business_days,
    add_months,
    deadlines_for,
    effective_due_at,
    extended_due_at,
    is_near_due,
    is_overdue,
)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def eod(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text + "T23:59:59.999999").replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-01-15T10:00:00", "2026-02-15"),
        ("2026-01-31T08:00:00", "2026-02-28"),  # end-of-month rule
        ("2028-01-31T08:00:00", "2028-02-29"),  # leap year
        ("2026-03-31T23:59:00", "2026-04-30"),
        ("2026-12-20T00:00:00", "2027-01-20"),  # year boundary
        ("2026-02-28T12:00:00", "2026-03-28"),  # same date, not "last day of month"
    ],
)
def test_gdpr_due_in_one_calendar_month(received: str, due: str) -> None:
    deadlines = deadlines_for("gdpr", at(received))
    assert deadlines.due_at == eod(due)
    assert deadlines.extension_notice_by == deadlines.due_at
    assert deadlines.acknowledge_by is None


def test_gdpr_counts_the_day_in_utc() -> None:
    # 00:30 in Berlin on 1 March is still 28 February in UTC.
    berlin = dt.timezone(dt.timedelta(hours=1))
    deadlines = deadlines_for("gdpr", dt.datetime(2026, 3, 1, 0, 30, tzinfo=berlin))
    assert deadlines.due_at == eod("2026-03-28")


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deadlines_for("gdpr", dt.datetime(2026, 1, 1))


def test_gdpr_extension_by_one_then_two_months() -> None:
    deadlines = deadlines_for("gdpr", at("2026-01-31T09:00:00"))
    one = extended_due_at(deadlines, months=1, now=at("2026-02-10T00:00:00"), already_extended_until=None)
    assert one == eod("2026-03-31")
    two = extended_due_at(deadlines, months=2, now=at("2026-02-20T00:00:00"), already_extended_until=one)
    assert two == eod("2026-04-30")
    assert two == deadlines.latest_extended_due_at


def test_gdpr_extension_refused_after_the_first_month() -> None:
    deadlines = deadlines_for("gdpr", at("2026-01-15T09:00:00"))
    assert extended_due_at(deadlines, months=2, now=eod("2026-02-15"), already_extended_until=None) == eod(
        "2026-04-15"
    )
    with pytest.raises(ExtensionRefused, match="within it"):
        extended_due_at(
            deadlines,
            months=1,
            now=eod("2026-02-15") + dt.timedelta(microseconds=1),
            already_extended_until=None,
        )


@pytest.mark.parametrize("months", [0, 3, -1])
def test_gdpr_extension_beyond_three_months_in_total_is_refused(months: int) -> None:
    deadlines = deadlines_for("gdpr", at("2026-01-15T09:00:00"))
    with pytest.raises(ExtensionRefused, match="3 months"):
        extended_due_at(deadlines, months=months, now=at("2026-01-16T00:00:00"), already_extended_until=None)


def test_an_extension_never_shortens_an_earlier_one() -> None:
    deadlines = deadlines_for("gdpr", at("2026-01-15T09:00:00"))
    two = extended_due_at(deadlines, months=2, now=at("2026-01-16T00:00:00"), already_extended_until=None)
    with pytest.raises(ExtensionRefused, match="shorten"):
        extended_due_at(deadlines, months=1, now=at("2026-01-17T00:00:00"), already_extended_until=two)


def test_ccpa_acknowledge_in_ten_business_days_answer_in_45() -> None:
    # Friday 2 January 2026: ten business days later is Friday 16 January.
    deadlines = deadlines_for("ccpa", at("2026-01-02T15:00:00"))
    assert deadlines.acknowledge_by == eod("2026-01-16")
    assert deadlines.due_at == eod("2026-02-16")
    assert deadlines.latest_extended_due_at == eod("2026-04-02")


def test_ccpa_one_extension_to_90_days() -> None:
    deadlines = deadlines_for("ccpa", at("2026-01-02T15:00:00"))
    until = extended_due_at(deadlines, months=1, now=at("2026-02-01T00:00:00"), already_extended_until=None)
    assert until == eod("2026-04-02")
    with pytest.raises(ExtensionRefused, match="one extension"):
        extended_due_at(deadlines, months=1, now=at("2026-02-02T00:00:00"), already_extended_until=until)
    with pytest.raises(ExtensionRefused, match="one extension"):
        extended_due_at(deadlines, months=2, now=at("2026-02-02T00:00:00"), already_extended_until=None)
    with pytest.raises(ExtensionRefused, match="within it"):
        extended_due_at(deadlines, months=1, now=at("2026-02-17T00:00:00"), already_extended_until=None)


def test_overdue_and_near_due() -> None:
    due = eod("2026-02-15")
    assert not is_overdue(due, now=due, completed_at=None)
    assert is_overdue(due, now=due + dt.timedelta(seconds=1), completed_at=None)
    assert is_overdue(due, now=at("2026-01-20T00:00:00"), completed_at=due + dt.timedelta(days=1))
    assert not is_overdue(due, now=at("2027-01-01T00:00:00"), completed_at=at("2026-02-01T00:00:00"))
    week = dt.timedelta(days=7)
    assert is_near_due(due, now=at("2026-02-10T00:00:00"), within=week)
    assert not is_near_due(due, now=at("2026-02-01T00:00:00"), within=week)
    assert not is_near_due(due, now=due + dt.timedelta(seconds=1), within=week)


def test_effective_due_at_prefers_the_extension() -> None:
    deadlines = deadlines_for("gdpr", at("2026-01-15T09:00:00"))
    assert effective_due_at(deadlines, None) == deadlines.due_at
    assert effective_due_at(deadlines, eod("2026-03-15")) == eod("2026-03-15")


_days = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2200, 12, 31))


@given(_days, st.integers(min_value=0, max_value=36))
def test_add_months_lands_in_the_right_month_on_the_right_day(day: dt.date, months: int) -> None:
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    last = calendar.monthrange(result.year, result.month)[1]
    assert result.day == min(day.day, last)


@given(_days, st.integers(min_value=0, max_value=60))
def test_business_days_skip_weekends_only(day: dt.date, days: int) -> None:
    result = add_business_days(day, days)
    assert result >= day
    if days:
        assert result.weekday() < 5
    between = [day + dt.timedelta(days=i) for i in range(1, (result - day).days + 1)]
    assert sum(1 for d in between if d.weekday() < 5) == days


@given(
    st.datetimes(
        min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
    )
)
def test_gdpr_deadline_properties(received: dt.datetime) -> None:
    deadlines: Deadlines = deadlines_for("gdpr", received)
    # At least 28 and at most 31 days of answer time; the extension adds at most two months more.
    assert dt.timedelta(days=27) < deadlines.due_at - received <= dt.timedelta(days=32)
    assert deadlines.due_at < deadlines.latest_extended_due_at <= deadlines.due_at + dt.timedelta(days=62)
    assert deadlines.due_at.time() == dt.time(23, 59, 59, 999_999)
    # Nothing later than the last extension is ever granted.
    for months in (1, 2):
        until = extended_due_at(deadlines, months=months, now=received, already_extended_until=None)
        assert deadlines.due_at < until <= deadlines.latest_extended_due_at


@given(
    st.datetimes(
        min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
    )
)
def test_ccpa_deadline_properties(received: dt.datetime) -> None:
    deadlines = deadlines_for("ccpa", received)
    assert deadlines.acknowledge_by is not None
    # Ten business days are 12 to 14 calendar days.
    assert dt.timedelta(days=12) <= deadlines.acknowledge_by.date() - received.date() <= dt.timedelta(days=14)
    assert (deadlines.due_at.date() - received.date()).days == 45
    assert (deadlines.latest_extended_due_at.date() - received.date()).days == 90

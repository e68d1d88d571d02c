"""The legal clock of a data-subject request: when it must be acknowledged, answered, and how far it may stretch.

Two regimes, chosen per account (``settings["privacy_jurisdiction"]``, default GDPR):

- **GDPR** (Art. 12(3)): answer within one calendar month of receipt. A period in months ends on the day of the
  last month that has the same date as the day of receipt; when that month is shorter, on its last day
  (Regulation 1182/71 Art. 3(2)(c), the "end-of-month rule": 31 January -> 28/29 February). It may be extended by
  up to two further months (three in total), but only with a notice giving the reasons, sent within the first
  month.
- **CCPA** (Cal. Civ. Code 1798.130, CCPA Regs. 7021): confirm receipt within 10 business days; answer within 45
  calendar days; one extension to 90 days in total, with notice and reasons given within the first 45 days.

Deadlines are the end of the due day (23:59:59.999999) in UTC. No public holidays are modelled and a GDPR deadline
falling on a weekend is not moved later: both only make the displayed deadline earlier than the legal one, never
later. Every function takes the current time as an argument or through a
:data:`~tapwire_core.clock.Clock`, so tests never sleep.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

Jurisdiction = Literal["gdpr", "ccpa"]
JURISDICTIONS: Final[tuple[Jurisdiction, ...]] = ("gdpr", "ccpa")

GDPR_ANSWER_MONTHS: Final = 1
GDPR_MAX_EXTENSION_MONTHS: Final = 2
CCPA_ACK_BUSINESS_DAYS: Final = 10
CCPA_ANSWER_DAYS: Final = 45
CCPA_EXTENDED_DAYS: Final = 90

_END_OF_DAY: Final = dt.time(23, 59, 59, 999_999, tzinfo=dt.UTC)


class ExtensionRefused(ValueError):
    """An extension the law does not allow (too late, too long, or not available in this regime)."""


@dataclass(frozen=True)
class Deadlines:
    """Every date that matters for one request, fixed at receipt."""

    jurisdiction: Jurisdiction
    received_at: dt.datetime
    due_at: dt.datetime
    """The answer is owed by then unless extended."""
    extension_notice_by: dt.datetime
    """The last moment an extension notice may be sent (the end of the first answer period)."""
    latest_extended_due_at: dt.datetime
    """The furthest the answer can ever be pushed."""
    acknowledge_by: dt.datetime | None = None
    """CCPA only: receipt must be confirmed by then."""


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by ``months`` calendar months; clamped to the last day of a shorter target month."""
    if months < 0:
        raise ValueError("months must not be negative")
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def add_business_days(day: dt.date, days: int) -> dt.date:
    """The ``days``-th Monday-to-Friday after ``day`` (``day`` itself does not count)."""
    if days < 0:
        raise ValueError("days must not be negative")
    current = day
    remaining = days
    while remaining:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def end_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, _END_OF_DAY)


def _utc_day(moment: dt.datetime) -> dt.date:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(dt.UTC).date()


def deadlines_for(jurisdiction: Jurisdiction, received_at: dt.datetime) -> Deadlines:
    """The deadlines of a request received at ``received_at`` (timezone-aware; ValueError otherwise)."""
    day = _utc_day(received_at)
    if jurisdiction == "gdpr":
        due = end_of_day(add_months(day, GDPR_ANSWER_MONTHS))
        return Deadlines(
            jurisdiction=jurisdiction,
            received_at=received_at,
            due_at=due,
            extension_notice_by=due,
            latest_extended_due_at=end_of_day(
                add_months(day, GDPR_ANSWER_MONTHS + GDPR_MAX_EXTENSION_MONTHS)
            ),
        )
    due = end_of_day(day + dt.timedelta(days=CCPA_ANSWER_DAYS))
    return Deadlines(
        jurisdiction=jurisdiction,
        received_at=received_at,
        due_at=due,
        extension_notice_by=due,
        latest_extended_due_at=end_of_day(day + dt.timedelta(days=CCPA_EXTENDED_DAYS)),
        acknowledge_by=end_of_day(add_business_days(day, CCPA_ACK_BUSINESS_DAYS)),
    )


def extended_due_at(
    deadlines: Deadlines,
    *,
    months: int,
    now: dt.datetime,
    already_extended_until: dt.datetime | None,
) -> dt.datetime:
    """The new deadline when the answer is extended by ``months`` in total beyond the first period.

    GDPR: ``months`` is 1 or 2; a later call may lengthen an earlier extension up to 2 but never shorten it.
    CCPA: the one extension is to 90 days; ``months`` must be 1 (45 more days) and only one extension exists.
    Raises :class:`ExtensionRefused` when the notice comes after the first period or the total is not allowed.
    """
    if now > deadlines.extension_notice_by:
        raise ExtensionRefused(
            f"the first answer period ended at {deadlines.extension_notice_by.isoformat()}; "
            "an extension must be notified within it"
        )
    if deadlines.jurisdiction == "gdpr":
        if months not in range(1, GDPR_MAX_EXTENSION_MONTHS + 1):
            raise ExtensionRefused(
                f"an extension is 1 or {GDPR_MAX_EXTENSION_MONTHS} months in total (3 months overall at most)"
            )
        day = _utc_day(deadlines.received_at)
        until = end_of_day(add_months(day, GDPR_ANSWER_MONTHS + months))
    else:
        if months != 1 or already_extended_until is not None:
            raise ExtensionRefused("under the CCPA there is one extension, to 90 days in total")
        until = deadlines.latest_extended_due_at
    if already_extended_until is not None and until < already_extended_until:
        raise ExtensionRefused("an extension cannot shorten one already granted")
    return until


def effective_due_at(deadlines: Deadlines, extended_until: dt.datetime | None) -> dt.datetime:
    return extended_until if extended_until is not None else deadlines.due_at


def is_overdue(due_at: dt.datetime, *, now: dt.datetime, completed_at: dt.datetime | None) -> bool:
    """Open past its deadline (or answered after it)."""
    return (completed_at or now) > due_at


def is_near_due(due_at: dt.datetime, *, now: dt.datetime, within: dt.timedelta) -> bool:
    """Still open, not yet overdue, and due within ``within``."""
    return now <= due_at <= now + within

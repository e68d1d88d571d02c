"""Copies of an erased subject's records on the bus: until when they may exist, and the legal bound on that.

An erasure cannot reach into the bus: a record published before the suppression stays in its topic until the
topic's retention removes it (the gateway refuses new ones and the loader drops the old ones when it reads them,
so none reaches a store again). tapwire bounds those copies in time instead of encrypting them per subject
(crypto-shredding: see docs/privacy.md for the comparison), so the privacy worker

- computes, per topic, the latest moment a copy can still exist, and lists it in the completion record;
- reports an erasure complete only once that moment has passed (the request waits in ``copies_expiring``);
- refuses to start where that moment could fall after the legal deadline, or after the suppression that keeps
  the loader from storing those copies again has expired.

A topic's bound, counted from the last moment a record naming the subject can be published (the last
suppression plus the gateway's reload of the list): Kafka deletes whole segments, so a record leaves when its
segment is closed (``segment.ms``), the newest record in it is past ``retention.ms``, and the broker's retention
check (5 minutes) has run; the embedded log deletes each record past its time bound on its next retention pass. A
dead letter is written when the loader reads a record, which may be as late as that record's own last moment, so
the dead-letter topic's bound starts where the events topic's ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from tapwire_core.bus.embedded_store import Retention
from tapwire_core.settings import Settings
from tapwire_privacy.records import iso

LEGAL_DEADLINE_FLOOR: Final = dt.timedelta(days=28)
"""The shortest time an erasure may take by law: GDPR's one month is never shorter than 28 days (CCPA's 45 days
are longer). Every copy must be gone well inside it."""

KAFKA_RETENTION_CHECK: Final = dt.timedelta(minutes=5)
"""Kafka's ``log.retention.check.interval.ms`` (default 5 minutes; the manifests do not change it)."""


class BusRetentionTooLong(ValueError):
    """The bus may keep a copy of an erased subject's record past the legal deadline or past its suppression."""


@dataclass(frozen=True)
class TopicLifetime:
    """How long after the last publication naming a subject a copy of it may still exist in ``topic``."""

    topic: str
    longest: dt.timedelta


def topic_lifetimes(settings: Settings, *, embedded: Retention | None) -> tuple[TopicLifetime, ...]:
    """The events and dead-letter topics' bounds on the bus in use: the embedded log with its ``embedded``
    retention, or (None) Kafka as the ``*_topic_retention_hours`` and ``topic_segment_hours`` settings describe
    its topics."""
    if embedded is not None:
        events = dead_letters = dt.timedelta(seconds=embedded.max_age_s + embedded.interval_s)
    else:
        segment = dt.timedelta(hours=settings.topic_segment_hours) + KAFKA_RETENTION_CHECK
        events = dt.timedelta(hours=settings.events_topic_retention_hours) + segment
        dead_letters = dt.timedelta(hours=settings.dead_letter_topic_retention_hours) + segment
    return (
        TopicLifetime(settings.events_topic, events),
        TopicLifetime(settings.dead_letter_topic, events + dead_letters),
    )


def publication_ends(settings: Settings, last_suppressed: dt.datetime) -> dt.datetime:
    """The last moment a record naming a subject suppressed at ``last_suppressed`` can still be published: the
    gateway reloads the suppression list every ``privacy_suppression_refresh_s``."""
    return last_suppressed + dt.timedelta(seconds=settings.privacy_suppression_refresh_s)


def bus_copies(lifetimes: Sequence[TopicLifetime], *, publication_ended: dt.datetime) -> list[dict[str, Any]]:
    """The completion record's list: every topic that may hold a copy, and when the last one is gone."""
    return [
        {"topic": lifetime.topic, "may_exist_until": iso(publication_ended + lifetime.longest)}
        for lifetime in lifetimes
    ]


def check_retention(settings: Settings, lifetimes: Sequence[TopicLifetime]) -> None:
    """Refuse (raise :class:`BusRetentionTooLong`) a configuration where a copy could outlive the legal deadline
    or its subject's suppression. Called when the privacy worker starts."""
    longest = max(lifetime.longest for lifetime in lifetimes)
    # The erasure itself: both sweeps and the gateway's reload of the suppression list.
    work = dt.timedelta(seconds=2 * settings.privacy_sweep_delay_s + settings.privacy_suppression_refresh_s)
    if longest + work >= LEGAL_DEADLINE_FLOOR:
        raise BusRetentionTooLong(
            f"a copy of an erased subject's record may stay on the bus for {_days(longest)} days, which with the "
            f"erasure itself reaches the legal deadline ({LEGAL_DEADLINE_FLOOR.days} days at the shortest): lower "
            "TAPWIRE_EVENTS_TOPIC_RETENTION_HOURS, TAPWIRE_DEAD_LETTER_TOPIC_RETENTION_HOURS, "
            "TAPWIRE_TOPIC_SEGMENT_HOURS (and the topics' retention.ms and segment.ms) or "
            "TAPWIRE_EMBEDDED_LOG_RETENTION_HOURS"
        )
    if longest > dt.timedelta(days=settings.privacy_suppression_days):
        raise BusRetentionTooLong(
            f"a copy of an erased subject's record may stay on the bus for {_days(longest)} days, longer than "
            f"its suppression (TAPWIRE_PRIVACY_SUPPRESSION_DAYS={settings.privacy_suppression_days}): the loader "
            "would store such a copy again once the suppression expired"
        )


def _days(span: dt.timedelta) -> str:
    return f"{span / dt.timedelta(days=1):.1f}"

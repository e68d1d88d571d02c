"""What became of a claimed row, on its way from the claimer or a dispatcher to the recorder."""

from __future__ import annotations

from dataclasses import dataclass, field

from tapwire_messaging.email_feedback.notices import Notice
from tapwire_messaging.feedback import Feedback
from tapwire_messaging.outbox import Claimed, Verdict

MAX_ATTEMPTS = 5
_MAX_BACKOFF_MS = 300_000


@dataclass(frozen=True, slots=True)
class DeadToken:
    """A push token the provider disowned, to be refused for every later message."""

    account_id: str
    token: str
    reported_ms: int


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    feedback: Feedback | None = None
    holds_slot: bool = False
    """The row went to a provider and holds a send-window slot until its verdict is written."""
    dead_token: DeadToken | None = None
    bounce: Notice | None = None
    """An email the server refused, judged (a hard, soft or block bounce): recorded, and its event published,
    by the feedback intake once the verdict is written."""


@dataclass
class SenderStats:
    """Counts since the sender started, for tests and logs."""

    claimed: int = 0
    sent: int = 0
    expired: int = 0
    deferred: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def retry_or_fail(row: Claimed, detail: str, *, now_ms: int, retry_after_s: float | None = None) -> Verdict:
    """A failed attempt: back to pending with exponential backoff (1 s doubling, at most 5 min, never sooner
    than the provider's ``Retry-After``), or ``failed`` once the row has had :data:`MAX_ATTEMPTS` attempts."""
    if row.attempts >= MAX_ATTEMPTS:
        return Verdict(row.id, "failed", detail)
    backoff_ms = max(min(_MAX_BACKOFF_MS, 1000 * 2**row.attempts), int((retry_after_s or 0) * 1000))
    return Verdict(row.id, "pending", detail, due_ms=now_ms + backoff_ms)

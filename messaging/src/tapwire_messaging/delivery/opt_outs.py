"""Opt-outs written since a row was claimed: the last check before a message leaves.

The claimer checks consent in the database when it claims a row; a row then waits in the dispatch queue (and
for its throttle) before it is sent. An opt-out written in between must still stop it. The unsubscribe
endpoints of this process tell :class:`RecentOptOuts` at once (:meth:`RecentOptOuts.note`), and the scheduler
polls the consent table for opt-outs written by other processes (:meth:`RecentOptOuts.refresh`).

Like the claim-time check, an unsubscribe or objection stops promotional messages only; an explicit opt-out of the
channel, an email suppression (bounce, complaint) and a disowned push token stop transactional ones too.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.clock import Clock, epoch_ms
from tapwire_core.control.messaging import consent
from tapwire_messaging.outbox import Claimed

# How long an opt-out is remembered in memory for rows claimed before it (claims older than this are re-checked
# against the database when they are claimed again after their lease).
OPT_OUT_MEMORY_MS = 15 * 60 * 1000
# Overlap of successive polls: writers' clocks and commit order may lag a little.
_POLL_OVERLAP_MS = 5_000


class RecentOptOuts:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        # (account, subject kind, subject) -> {channel or "all": updated ms}, for opt-outs of promotional
        # messages and for those of every message.
        self._promotional: dict[tuple[str, str, str], dict[str, int]] = {}
        self._every_message: dict[tuple[str, str, str], dict[str, int]] = {}
        self._polled_ms = epoch_ms(clock())

    def note(
        self, account_id: str, kind: str, subject: str, channel: str, updated_ms: int, *, every_message: bool
    ) -> None:
        """Refuse sends to ``subject`` on ``channel`` (or every channel for ``all``) from now on, including
        messages already claimed: promotional ones, or with ``every_message`` transactional ones too. Never
        blocks."""
        key = (account_id, kind, consent.normalise_subject(kind, subject))  # type: ignore[arg-type]
        seen = self._every_message if every_message or kind == "token" else self._promotional
        seen.setdefault(key, {})[channel] = updated_ms

    async def refresh(self) -> None:
        """Note opt-outs written by any process since the last poll, and forget those older than
        :data:`OPT_OUT_MEMORY_MS`. Raises what the control store raises."""
        changes = await consent.opt_outs_since(self._engine, since_ms=self._polled_ms - _POLL_OVERLAP_MS)
        for change in changes:
            self.note(
                change.account_id,
                change.kind,
                change.subject,
                change.channel,
                change.updated_ms,
                every_message=change.state == "opted_out",
            )
        self._polled_ms = max([self._polled_ms, *(c.updated_ms for c in changes)])
        horizon = epoch_ms(self._clock()) - OPT_OUT_MEMORY_MS
        for seen in (self._promotional, self._every_message):
            for key in [k for k, channels in seen.items() if max(channels.values()) < horizon]:
                del seen[key]

    def refuses(self, row: Claimed, account_id: str, *, since_ms: int, transactional: bool) -> bool:
        """Whether an opt-out written at or after ``since_ms`` (just before ``row`` was claimed and checked
        against the database) forbids sending it now."""
        kinds = (self._every_message,) if transactional else (self._every_message, self._promotional)
        return any(self._refused_by(seen, row, account_id, since_ms) for seen in kinds if seen)

    @staticmethod
    def _refused_by(
        seen: dict[tuple[str, str, str], dict[str, int]], row: Claimed, account_id: str, since_ms: int
    ) -> bool:
        subjects = [("user", row.user_key)]
        if row.channel == "email":
            subjects.append(("email", row.address.strip().lower()))
        elif row.channel == "sms":
            subjects.append(("phone", row.address.strip()))
        elif row.channel == "push":
            # A token a provider disowned since (for this user's or any other campaign's message).
            subjects.append(("token", consent.normalise_subject("token", row.address)))
        for kind, subject in subjects:
            channels = seen.get((account_id, kind, subject))
            if not channels:
                continue
            latest = max(channels.get(row.channel, -1), channels.get(consent.ALL_CHANNELS, -1))
            if latest >= since_ms:
                return True
        return False

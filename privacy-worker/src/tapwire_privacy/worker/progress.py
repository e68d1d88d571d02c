"""A request as the worker holds it during one pass, and how its progress is saved.

Progress lives in the request record (``progress.phase`` and ``progress.stores[<store>]``) and is saved after
every step that changed something, so a worker killed at any point resumes where the record says. A failing step
marks the request failed for this pass: it backs off exponentially, and after ``MAX_ATTEMPTS`` failed passes it
stops retrying (status ``failed``) until an operator re-queues it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tapwire_core.clock import Clock
from tapwire_core.privacy.scope import Scope
from tapwire_core.settings import Settings
from tapwire_privacy.records import RequestView
from tapwire_privacy.repository.audit import AuditAction
from tapwire_privacy.repository.leases import ProgressUpdate, RequestLeases

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 30
MAX_BACKOFF_S: Final = 600.0


@dataclass
class RequestWork:
    """One claimed request during a pass: its progress (changed in place), its closed keys once known (None
    for a tenant-wide request), and the audit actions not saved yet."""

    view: RequestView
    progress: dict[str, Any]
    keys: frozenset[str] | None = None
    actions: list[AuditAction] = field(default_factory=list)
    failed: bool = False
    closure_changed: bool = False

    @property
    def id(self) -> str:
        return self.view.id

    @property
    def phase(self) -> str:
        return str(self.progress.get("phase", "closure"))

    @phase.setter
    def phase(self, value: str) -> None:
        self.progress["phase"] = value

    def store(self, name: str) -> dict[str, Any]:
        """The progress entry of one store (created pending)."""
        stores: dict[str, dict[str, Any]] = self.progress.setdefault("stores", {})
        return stores.setdefault(name, {"state": "pending", "removed": 0, "attempts": 0})

    def scope(self) -> Scope:
        return Scope(self.view.id, self.view.account_id, self.keys)

    def fail(self, step: str, error: str, *, state: dict[str, Any] | None = None) -> None:
        """Mark the request failed for this pass: ``state`` (by default the store's, or the closure's) counts
        the attempt and keeps the error class; the request backs off exponentially."""
        self.failed = True
        if state is None:
            state = self.store(step) if step != "closure" else self.progress.setdefault("closure", {})
        state["attempts"] = int(state.get("attempts", 0)) + 1
        state["error"] = error
        attempts = self.view.attempts + 1
        self.progress["attempts"] = attempts
        self.actions.append(("failed", step, {"error": error, "attempt": attempts}))
        self.progress["retry_in_s"] = min(MAX_BACKOFF_S, 2.0**attempts)


class ProgressSaver:
    """Saves the progress of the requests one worker holds, under its lease."""

    def __init__(self, *, leases: RequestLeases, settings: Settings, clock: Clock, owner: str) -> None:
        self._leases = leases
        self._settings = settings
        self._clock = clock
        self.owner = owner

    async def save(self, works: Sequence[RequestWork], *, release: bool = False) -> None:
        """Save each request's progress and pending audit actions in one transaction. With ``release`` the lease
        is given up and the request falls due again: after its backoff when failed, after the sweep delay when
        waiting for the second sweep, after a poll when verification is still waiting, else at once."""
        now = self._clock()
        updates = []
        for work in works:
            next_run: dt.datetime | None = None
            status = None
            if work.failed:
                next_run = now + dt.timedelta(seconds=float(work.progress.get("retry_in_s", 1.0)))
                if int(work.progress.get("attempts", 0)) >= MAX_ATTEMPTS:
                    status = "failed"
            elif work.phase == "sweep_wait":
                status = "awaiting_sweep"
                next_run = now + dt.timedelta(seconds=self._settings.privacy_sweep_delay_s)
            elif work.phase == "verify" and release:
                next_run = now + dt.timedelta(seconds=self._settings.privacy_poll_s)
            elif release:
                next_run = now
            if status is None and work.view.status == "pending" and not work.failed:
                status = "in_progress"
            updates.append(
                ProgressUpdate(
                    request_id=work.id,
                    progress=work.progress,
                    status=status,  # type: ignore[arg-type]
                    next_run_at=next_run,
                    closure=sorted(work.keys) if work.closure_changed and work.keys is not None else None,
                    attempts=int(work.progress["attempts"]) if work.failed else None,
                    release=release,
                    actions=work.actions,
                )
            )
            work.actions = []
            work.closure_changed = False
        lost = await self._leases.save_many(updates, owner=self.owner)
        if lost:
            log.warning("privacy requests passed to another worker", extra={"requests": len(lost)})

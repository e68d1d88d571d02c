"""A request as the worker holds it during one pass, and how its progress is saved.

Progress lives in the request record (``progress.phase`` and ``progress.stores[<store>]``) and is saved after
every step that changed something, so a worker killed at any point resumes where the record says.

Every request has two attempt limits, after which it stops being retried (status ``failed``, with
``progress.failure`` saying why, a log line, ``tapwire_privacy_requests_stopped_total`` and a ``failed`` notice to
the customer) until an operator re-queues it:

- ``privacy_max_attempts`` failed passes (a store or step raised; each backs off exponentially);
- ``privacy_max_abandoned_passes`` passes in a row that never ended. A pass is recorded as begun
  (``progress.pass``) before the worker acts on the request and cleared when its outcome is saved; a worker that
  finds the mark of an earlier pass when it begins its own knows that pass died with its worker (killed for
  memory, say). Without this limit a request that kills every worker that takes it would be picked up by replica
  after replica as each lease ran out, and take the other requests of each pass down with it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from tapwire_core.clock import Clock
from tapwire_core.privacy.scope import Scope
from tapwire_core.settings import Settings
from tapwire_privacy import metrics
from tapwire_privacy.records import RequestView, Status, iso
from tapwire_privacy.repository.audit import AuditAction
from tapwire_privacy.repository.leases import ProgressUpdate, RequestLeases

log = logging.getLogger(__name__)

MAX_BACKOFF_S: Final = 600.0

StopCause = Literal["errors", "abandoned"]


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
    stopped: StopCause | None = None

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
        self.progress["last_error"] = {"step": step, "error": error}

    def begin(self, owner: str, now: dt.datetime) -> int:
        """Mark a pass as begun; returns how many passes in a row never ended, counting one whose mark is found
        now (its worker died before saving the outcome)."""
        earlier = self.progress.pop("pass", None)
        if isinstance(earlier, dict):
            abandoned = int(self.progress.get("abandoned", 0)) + 1
            self.progress["abandoned"] = abandoned
            self.actions.append(
                (
                    "pass_abandoned",
                    None,
                    {
                        "worker": earlier.get("worker"),
                        "started_at": earlier.get("started_at"),
                        "in_a_row": abandoned,
                    },
                )
            )
        self.progress["pass"] = {"worker": owner, "started_at": iso(now)}
        return int(self.progress.get("abandoned", 0))

    def end_pass(self) -> None:
        """The pass's outcome is being saved: it ended, so the run of abandoned passes is over."""
        self.progress.pop("pass", None)
        self.progress.pop("abandoned", None)

    def stop(self, cause: StopCause, detail: dict[str, Any]) -> None:
        """Stop retrying the request: it is saved as ``failed`` with the cause, for an operator to re-queue."""
        self.stopped = cause
        self.progress["failure"] = {"cause": cause, **detail}
        self.actions.append(("stopped_retrying", None, {"cause": cause, **detail}))


class ProgressSaver:
    """Saves the progress of the requests one worker holds, under its lease."""

    def __init__(self, *, leases: RequestLeases, settings: Settings, clock: Clock, owner: str) -> None:
        self._leases = leases
        self._settings = settings
        self._clock = clock
        self.owner = owner

    async def begin(self, works: Sequence[RequestWork]) -> list[RequestWork]:
        """Record a pass as begun on each request (saved before anything is acted on) and return the ones to
        work on; a request whose passes kept dying is stopped instead (saved as failed, lease released)."""
        now = self._clock()
        limit = self._settings.privacy_max_abandoned_passes
        stopping = []
        for work in works:
            abandoned = work.begin(self.owner, now)
            if abandoned >= limit:
                work.stop("abandoned", {"passes": abandoned})
                stopping.append(work)
        go_on = [work for work in works if work.stopped is None]
        await self.save(stopping, release=True)
        await self.save(go_on)
        return go_on

    async def save(self, works: Sequence[RequestWork], *, release: bool = False) -> None:
        """Save each request's progress and pending audit actions in one transaction. With ``release`` the pass
        ends: the lease is given up and the request falls due again — after its backoff when failed, after the
        sweep delay when waiting for the second sweep, when the last bus copy is gone when waiting for that, after a
        poll when verification is still waiting, else at once — unless it stopped retrying (status ``failed``)."""
        now = self._clock()
        updates = []
        stopped = []
        for work in works:
            attempts = int(work.progress.get("attempts", 0))
            if release and work.failed and attempts >= self._settings.privacy_max_attempts:
                work.stop("errors", {"attempts": attempts, **work.progress.get("last_error", {})})
            if release and work.stopped is not None:
                stopped.append(work)
            status, next_run = self._next_run(work, now, release=release)
            if release:
                work.end_pass()
            updates.append(
                ProgressUpdate(
                    request_id=work.id,
                    progress=work.progress,
                    status=status,
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
        _report_stopped([work for work in stopped if work.id not in lost])

    def _next_run(
        self, work: RequestWork, now: dt.datetime, *, release: bool
    ) -> tuple[Status | None, dt.datetime | None]:
        """The status to save (None: unchanged) and when the request falls due again (None: not set here)."""
        status, next_run = self._status_and_due(work, now, release=release)
        if status is None and work.view.status == "pending" and not work.failed:
            status = "in_progress"
        return status, next_run

    def _status_and_due(
        self, work: RequestWork, now: dt.datetime, *, release: bool
    ) -> tuple[Status | None, dt.datetime | None]:
        if work.stopped is not None:
            return "failed", None
        if work.failed:
            return None, now + dt.timedelta(seconds=float(work.progress.get("retry_in_s", 1.0)))
        if work.phase == "sweep_wait":
            return "awaiting_sweep", now + dt.timedelta(seconds=self._settings.privacy_sweep_delay_s)
        if work.phase == "copies_expiring":
            # The stores are clean; due again when the last copy on the bus is past its retention.
            gone_at = dt.datetime.fromisoformat(str(work.progress["copies_gone_at"]).replace("Z", "+00:00"))
            return "in_progress", gone_at
        if work.phase == "verify" and release:
            return None, now + dt.timedelta(seconds=self._settings.privacy_poll_s)
        return None, now if release else None


def _report_stopped(stopped: Sequence[RequestWork]) -> None:
    """Count and log the requests that stopped retrying and were saved so (an operator re-queues them)."""
    for work in stopped:
        if work.stopped is None:
            continue
        metrics.STOPPED.labels(work.view.type, work.stopped).inc()
        log.error(
            "privacy request stopped retrying; it waits for an operator to re-queue it",
            extra={
                "request": work.id,
                "account": work.view.account_id,
                "type": work.view.type,
                **{f"failure_{k}": v for k, v in work.progress.get("failure", {}).items()},
            },
        )

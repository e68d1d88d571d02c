"""The privacy worker: claims due requests and moves each through its phases, resumably.

Erasure (subject or tenant) runs ``closure -> suppress -> erase -> verify -> sweep_wait -> closure -> suppress ->
erase -> verify -> completed``: the identity closure first, then the suppression list (so records arriving from
now on are dropped), then every store's ``erase`` with all claimed requests of an account served by one
operation per store, then ``verify``; after ``privacy_sweep_delay_s`` (longer than the gateway's and loader's
suppression reload) the whole pass runs again to catch rows that landed in between, and only a clean second
verification completes the request.

Progress lives in the request record (``progress.phase`` and ``progress.stores[<store>]``) and is saved after
every step that changed something (before and after each delete; a store where nothing matched is saved with
the next save), so a worker killed at any point resumes where the record says: a store marked ``erased`` is not
erased again, and a step that was running when the worker died is simply repeated (every step is idempotent).
A failing store gets exponential backoff per request; other stores and requests go on.

Recipients of the subject's data (Art. 19) are told in each sweep before any store is erased, so what names
their records (e.g. the SMS provider's message ids in the outbox) is still there; a recipient that fails holds
the whole erase step back and is retried like a store.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tapwire_core.clock import Clock
from tapwire_core.control.privacy.subject_keys import key_hash
from tapwire_core.privacy.data_recipients import Forwarded, ForwardImpossible
from tapwire_core.privacy.scope import Scope
from tapwire_core.settings import Settings
from tapwire_privacy import metrics
from tapwire_privacy.closure import identity_closures
from tapwire_privacy.deadlines import is_near_due
from tapwire_privacy.export_archive import write_archive
from tapwire_privacy.notices import WebhookNotifier
from tapwire_privacy.records import RequestView, iso
from tapwire_privacy.registry import Registry
from tapwire_privacy.repository import Completion, PrivacyRepository, ProgressUpdate
from tapwire_privacy.stores.base import StoreHandler
from tapwire_privacy.stores.files import archive_path

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 30
MAX_BACKOFF_S: Final = 600.0
NEAR_DUE: Final = dt.timedelta(days=7)
_HOUSEKEEPING_S: Final = 60.0


@dataclass
class _Work:
    view: RequestView
    progress: dict[str, Any]
    keys: frozenset[str] | None = None
    actions: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)
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
        stores: dict[str, dict[str, Any]] = self.progress.setdefault("stores", {})
        return stores.setdefault(name, {"state": "pending", "removed": 0, "attempts": 0})

    def scope(self) -> Scope:
        return Scope(self.view.id, self.view.account_id, self.keys)


class PrivacyWorker:
    """One worker process's loop. Several may run against one control store: leases keep them apart."""

    def __init__(
        self,
        *,
        repository: PrivacyRepository,
        registry: Registry,
        settings: Settings,
        clock: Clock,
        notifier: WebhookNotifier | None = None,
        owner: str | None = None,
        lease_s: float = 600.0,
    ) -> None:
        self._repo = repository
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._notifier = notifier
        self.owner = owner or f"privacy-{secrets.token_hex(6)}"
        self._lease_s = lease_s
        self._stop = asyncio.Event()
        self._next_housekeeping = 0.0

    @property
    def export_dir(self) -> Path:
        return self._settings.resolved_export_dir()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Work until ``stop()``; a failing pass is logged and the next one starts after the poll interval."""
        while not self._stop.is_set():
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("privacy worker pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._settings.privacy_poll_s)

    async def tick(self) -> int:
        """One pass: claim due requests and advance each as far as it can go now. Returns how many."""
        claimed = await self._repo.claim(
            owner=self.owner, lease_s=self._lease_s, limit=self._settings.privacy_batch_size
        )
        erasures: dict[str, list[RequestView]] = defaultdict(list)
        for view in claimed:
            if view.type == "erasure":
                erasures[view.account_id].append(view)
        for group in erasures.values():
            await self._erasures(group)
        for view in claimed:
            if view.type != "erasure":
                await self._single(view)
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_housekeeping:
            self._next_housekeeping = loop.time() + _HOUSEKEEPING_S
            await self.housekeeping()
        elif self._notifier is not None:
            await self.deliver_notices()
        return len(claimed)

    # Erasure.

    async def _erasures(self, group: Sequence[RequestView]) -> None:
        works = [_Work(view, dict(view.progress)) for view in group]
        for work in works:
            if work.phase == "sweep_wait":
                work.progress["sweep"] = 1
                work.phase = "closure"
                for state in work.progress.get("stores", {}).values():
                    state["state"] = "pending"
                work.actions.append(("second_sweep_started", None, {}))
        await self._close_identities(works)
        suppressing = [w for w in works if w.phase == "suppress" and not w.failed]
        if suppressing:
            added = await self._repo.suppress_many(
                [(w.view.account_id, w.id, w.keys) for w in suppressing],
                days=self._settings.privacy_suppression_days,
            )
            for work in suppressing:
                work.actions.append(("suppressed", "bus.suppression_list", {"new_entries": added[work.id]}))
                work.phase = "erase"
        for work in works:
            # Before any store is erased: what a recipient got is found through those stores. The second sweep
            # forwards again what was sent to the subject after the first pass (found through the new rows only).
            if work.phase == "erase" and not work.failed:
                await self._forward(work, "erasure", None)
        await self._save(works)
        erasing = [w for w in works if w.phase == "erase" and not w.failed]
        for handler in self._registry.handlers:
            todo = [w for w in erasing if not w.failed and w.store(handler.name)["state"] != "erased"]
            if todo:
                await self._erase_store(handler, todo)
        for work in erasing:
            if not work.failed:
                work.phase = "verify"
        await self._verify([w for w in works if w.phase == "verify" and not w.failed])
        await self._save([w for w in works if w.phase != "completed"], release=True)

    async def _close_identities(self, works: Sequence[_Work]) -> None:
        """Load each request's keys; close the identities of those in the closure phase, all at once."""
        to_close: dict[str, tuple[_Work, list[str]]] = {}
        subjects = await self._repo.subjects([w.id for w in works if w.view.scope == "subject"])
        for work in works:
            if work.view.scope == "tenant":
                work.keys = None
                if work.phase == "closure":
                    work.phase = "suppress"
                continue
            subject = subjects.get(work.id)
            if subject is None:
                self._fail(work, "closure", "the request's working set is missing")
            elif work.phase == "closure" or subject.closure is None:
                # A second sweep keeps every key found before: rows that carried them may be gone by now.
                to_close[work.id] = (work, [*subject.identifiers, *(subject.closure or ())])
            else:
                work.keys = frozenset(subject.closure)
        if not to_close:
            return
        by_account: dict[str, dict[str, list[str]]] = defaultdict(dict)
        for rid, (work, keys) in to_close.items():
            by_account[work.view.account_id][rid] = keys
        for account_id, named in by_account.items():
            try:
                closed = await identity_closures(self._registry.sources, account_id, named)
            except Exception as exc:
                for rid in named:
                    self._fail(to_close[rid][0], "closure", type(exc).__name__)
                continue
            for rid, closure in closed.items():
                work = to_close[rid][0]
                work.keys = closure
                work.closure_changed = True
                work.actions.append(("closure", None, {"identifiers": len(closure)}))
                work.phase = "suppress"

    async def _erase_store(self, handler: StoreHandler, todo: list[_Work]) -> None:
        scopes = [w.scope() for w in todo]
        try:
            counts = await handler.count(scopes) if handler.erasure == "erase" else {}
            # Counted before erasing, and remembered: a worker that dies after the delete was issued recounts
            # zero on resume, and the completion record must still say how many rows went.
            for work in todo:
                state = work.store(handler.name)
                counts[work.id] = max(counts.get(work.id, 0), int(state.get("counted", 0)))
                state["counted"] = counts[work.id]
            # Nothing matched in any active part: a mutation would rewrite data for nothing. A row landing
            # after the count would escape a mutation issued now just the same; verification catches it.
            issued = handler.erasure == "erase" and any(counts.values())
            if issued:
                # The count is saved before the delete, so a worker killed after it still reports the rows.
                await self._save(todo)
                await handler.erase(scopes)
        except Exception as exc:
            metrics.STORE_FAILURES.labels(handler.name).inc()
            log.warning(
                "privacy erase failed on a store; will retry",
                extra={"store": handler.name, "requests": len(todo), "error": type(exc).__name__},
                exc_info=True,
            )
            for work in todo:
                self._fail(work, handler.name, type(exc).__name__)
            return
        if len(todo) > 1:
            metrics.BATCH_SUBJECTS.inc(len(todo))
        for work in todo:
            state = work.store(handler.name)
            removed = counts.get(work.id, 0)
            # A retained store is settled for good too: later passes skip it like an erased one.
            state["state"] = "erased"
            state["retained"] = handler.erasure == "retain"
            state["removed"] = int(state.get("removed", 0)) + removed
            state.pop("error", None)
            state.pop("counted", None)
            if handler.erasure == "erase":
                metrics.ROWS_ERASED.labels(handler.name).inc(removed)
            work.actions.append(
                (
                    "erased" if handler.erasure == "erase" else "retained",
                    handler.name,
                    {"rows": removed, "batch": len(todo), "statement": issued},
                )
            )
        if issued:
            await self._save(todo)
        # A store where nothing was found is saved with the next save: repeating it after a crash costs one count.

    async def _verify(self, works: list[_Work]) -> None:
        if not works:
            return
        results: dict[str, dict[str, Any]] = {w.id: {} for w in works}
        pending: set[str] = set()
        residue: set[str] = set()
        for handler in self._registry.handlers:
            try:
                await handler.settle()
                found = await handler.verify([w.scope() for w in works])
            except Exception as exc:
                metrics.STORE_FAILURES.labels(handler.name).inc()
                for work in works:
                    self._fail(work, handler.name, type(exc).__name__)
                return
            for work in works:
                verification = found[work.id]
                results[work.id][handler.name] = verification.to_json()
                if verification.pending:
                    pending.add(work.id)
                elif verification.residue:
                    residue.add(work.id)
                    work.store(handler.name)["state"] = "pending"
        now = self._clock()
        finished: list[tuple[_Work, dict[str, Any]]] = []
        for work in works:
            sweep = int(work.progress.get("sweep", 0))
            record = {"sweep": sweep + 1, "checked_at": iso(now), "stores": results[work.id]}
            if work.id in pending:
                work.progress["next_check"] = "mutations still running"
                continue
            if work.id in residue:
                work.phase = "erase"
                work.actions.append(("residue_found", None, {"sweep": sweep + 1}))
                continue
            work.progress.setdefault("verifications", []).append(record)
            work.actions.append(("verified", None, {"sweep": sweep + 1}))
            if sweep == 0:
                work.phase = "sweep_wait"
                work.progress["sweep_due"] = iso(
                    now + dt.timedelta(seconds=self._settings.privacy_sweep_delay_s)
                )
            else:
                work.phase = "completed"
                finished.append((work, record))
        await self._complete_erasures(finished)

    async def _complete_erasures(self, finished: list[tuple[_Work, dict[str, Any]]]) -> None:
        if not finished:
            return
        await self._save([work for work, _ in finished])
        completions = []
        for work, record in finished:
            removed = {
                name: int(state.get("removed", 0)) for name, state in work.progress.get("stores", {}).items()
            }
            verification = {
                "result": "verified",
                "sweeps": len(work.progress.get("verifications", [])),
                "stores": record["stores"],
                "checked_at": record["checked_at"],
            }
            completions.append(
                Completion(
                    work.id,
                    work.progress,
                    verification,
                    detail={
                        "removed": removed,
                        "scope": work.view.scope,
                        "recipients": work.progress.get("recipients", {}),
                    },
                )
            )
        lost = await self._repo.complete_many(completions, owner=self.owner)
        for work, _ in finished:
            if work.id in lost:
                log.warning("lost the lease while completing a privacy request", extra={"request": work.id})
                continue
            metrics.COMPLETED.labels("erasure", "completed").inc()
            log.info("privacy request completed", extra={"request": work.id, "type": "erasure"})

    async def _forward(self, work: _Work, action: Forwarded, fields: Mapping[str, Any] | None) -> None:
        """Tell every recipient that received something about the subject, once per sweep each (Art. 19).

        ``progress.recipients[<name>]`` records the outcome with the recipient's counts (summed over sweeps) and
        the sweep it was settled in: ``notified``, ``not notified`` (with the reason) or ``failed`` (with the error
        class). A failed forward fails the step like a store: the request backs off and, for an erasure, no store
        is erased before every recipient is settled, so what the recipient needs to be told (e.g. the SMS
        provider's message ids) is still there."""
        done: dict[str, Any] = work.progress.setdefault("recipients", {})
        sweep = int(work.progress.get("sweep", 0))
        scope = work.scope()
        for recipient in self._registry.data_recipients:
            earlier = done.get(recipient.name)
            # A plain string is an outcome recorded before counts were kept.
            if isinstance(earlier, str):
                earlier = {"outcome": earlier, "sweep": 0}
            if (
                earlier is not None
                and earlier.get("outcome") != "failed"
                and earlier.get("sweep", 0) >= sweep
            ):
                continue
            try:
                if not await recipient.received(scope):
                    continue
                counts = dict(await recipient.forward(action, scope, fields) or {})
            except ForwardImpossible as exc:
                done[recipient.name] = {"outcome": "not notified", "reason": exc.reason, "sweep": sweep}
                work.actions.append(
                    ("recipient_not_notified", recipient.name, {"action": action, "reason": exc.reason})
                )
                continue
            except Exception as exc:
                log.warning(
                    "privacy forward to a recipient failed; will retry",
                    extra={"recipient": recipient.name, "request": work.id, "error": type(exc).__name__},
                )
                # An outcome settled in an earlier sweep stays; the error and attempts sit next to it.
                state = done[recipient.name] = dict(earlier or {"outcome": "failed"})
                self._fail(work, recipient.name, type(exc).__name__, state=state)
                return
            before = earlier if earlier is not None and earlier.get("outcome") == "notified" else {}
            total = {name: value + int(before.get(name, 0)) for name, value in counts.items()}
            done[recipient.name] = {"outcome": "notified", **total, "sweep": sweep}
            work.actions.append(("recipient_notified", recipient.name, {"action": action, **counts}))

    async def _recipients_of(self, scope: Scope) -> list[dict[str, Any]]:
        listed = []
        for recipient in self._registry.data_recipients:
            received = await recipient.received(scope)
            if received:
                listed.append({"recipient": recipient.name, "received": received})
        return listed

    # Export, rectification, objection.

    async def _single(self, view: RequestView) -> None:
        work = _Work(view, dict(view.progress))
        await self._close_identities([work])
        if work.failed:
            await self._save([work], release=True)
            return
        scope = work.scope()
        try:
            if view.type == "export":
                await self._export(work, scope)
            elif view.type == "rectify":
                await self._rectify(work, scope)
            else:
                await self._object(work, scope)
        except Exception as exc:
            log.warning(
                "privacy request step failed; will retry",
                extra={"request": view.id, "type": view.type, "error": type(exc).__name__},
            )
            self._fail(work, view.type, type(exc).__name__)
            await self._save([work], release=True)

    async def _export(self, work: _Work, scope: Scope) -> None:
        stores: dict[str, list[dict[str, Any]]] = {}
        for handler in self._registry.handlers:
            stores[handler.name] = await handler.export(scope)
        now = self._clock()
        manifest: dict[str, Any] = {
            "request_id": work.id,
            "account_id": work.view.account_id,
            "scope": work.view.scope,
            "generated_at": iso(now),
            "identifiers_covered": None if scope.keys is None else len(scope.keys),
            "recipients": await self._recipients_of(scope),
        }
        await asyncio.to_thread(write_archive, self.export_dir, work.id, stores=stores, manifest=manifest)
        salt = await self._repo.secret()
        work.phase = "completed"
        work.progress["stores"] = {
            name: {"state": "exported", "rows": len(rows)} for name, rows in stores.items()
        }
        if scope.keys is not None:
            work.progress["archive_key_hashes"] = sorted(
                key_hash(salt, scope.account_id, key) for key in scope.keys
            )
        expires = now + dt.timedelta(days=self._settings.privacy_export_retention_days)
        await self._repo.complete(
            work.id,
            owner=self.owner,
            progress=work.progress,
            verification=None,
            export_expires_at=expires,
            detail={"rows": {name: len(rows) for name, rows in stores.items()}},
        )
        metrics.COMPLETED.labels("export", "completed").inc()

    async def _rectify(self, work: _Work, scope: Scope) -> None:
        subject = await self._repo.subject(work.id)
        fields = dict((subject.payload if subject else {}).get("fields", {}))
        changed: dict[str, int] = {}
        for handler in self._registry.handlers:
            changed[handler.name] = await handler.rectify(scope, fields)
        await self._forward(work, "rectify", fields)
        if work.failed:
            await self._save([work], release=True)
            return
        await self._save([work])
        work.phase = "completed"
        work.progress["stores"] = {
            name: {"state": "rectified", "rows": n} for name, n in changed.items() if n
        }
        await self._repo.complete(
            work.id,
            owner=self.owner,
            progress=work.progress,
            verification=None,
            detail={
                "changed": changed,
                "fields": len(fields),
                "recipients": work.progress.get("recipients", {}),
            },
        )
        metrics.COMPLETED.labels("rectify", "completed").inc()

    async def _object(self, work: _Work, scope: Scope) -> None:
        keys = sorted(scope.keys or ())
        added = await self._repo.record_objection(account_id=scope.account_id, request_id=work.id, keys=keys)
        work.phase = "completed"
        work.progress["stores"] = {"control.marketing_objections": {"state": "recorded", "rows": added}}
        await self._repo.complete(
            work.id,
            owner=self.owner,
            progress=work.progress,
            verification=None,
            detail={"new_entries": added},
        )
        metrics.COMPLETED.labels("objection", "completed").inc()

    # Housekeeping.

    async def housekeeping(self) -> None:
        """Expired archives, retention purge, deadline gauges and the overdue log line, notices."""
        for view in await self._repo.expired_exports():
            archive_path(self.export_dir, view.id).unlink(missing_ok=True)
            await self._repo.mark_export_erased(view.id)
        purged = await self._repo.purge_expired()
        if any(purged.values()):
            log.info("privacy records past retention purged", extra=purged)
        await self.refresh_deadline_metrics()
        if self._notifier is not None:
            await self.deliver_notices()

    async def refresh_deadline_metrics(self) -> tuple[int, int]:
        """Set the overdue, near-due, failed and late-acknowledgement gauges, logging each overdue request and
        each late acknowledgement. Returns (overdue, near due)."""
        now = self._clock()
        overdue = near = failed = 0
        for view in await self._repo.open_requests():
            failed += view.status == "failed"
            if view.overdue(now):
                overdue += 1
                log.warning(
                    "privacy request overdue",
                    extra={
                        "request": view.id,
                        "account": view.account_id,
                        "type": view.type,
                        "status": view.status,
                        "due_at": iso(view.effective_due_at),
                    },
                )
            elif is_near_due(view.effective_due_at, now=now, within=NEAR_DUE):
                near += 1
        metrics.OVERDUE.set(overdue)
        metrics.NEAR_DUE.set(near)
        metrics.FAILED.set(failed)
        late = await self._repo.unacknowledged()
        for view in late:
            log.warning(
                "privacy acknowledgement not delivered in time",
                extra={
                    "request": view.id,
                    "account": view.account_id,
                    "acknowledge_by": iso(view.acknowledge_by),
                },
            )
        metrics.UNACKNOWLEDGED.set(len(late))
        return overdue, near

    async def deliver_notices(self) -> None:
        if self._notifier is None:
            return
        for notice in await self._repo.due_notices():
            error = await self._notifier.deliver(notice.account_id, notice.kind, notice.payload)
            await self._repo.notice_result(
                notice.id, error=error, retry_in_s=min(MAX_BACKOFF_S, 30.0 * 2 ** min(notice.attempts, 10))
            )

    # Helpers.

    def _fail(self, work: _Work, store: str, error: str, *, state: dict[str, Any] | None = None) -> None:
        """Mark the request failed for this pass: ``state`` (by default the store's, or the closure's) counts
        the attempt and keeps the error class; the request backs off exponentially."""
        work.failed = True
        if state is None:
            state = work.store(store) if store != "closure" else work.progress.setdefault("closure", {})
        state["attempts"] = int(state.get("attempts", 0)) + 1
        state["error"] = error
        attempts = work.view.attempts + 1
        work.progress["attempts"] = attempts
        work.actions.append(("failed", store, {"error": error, "attempt": attempts}))
        work.progress["retry_in_s"] = min(MAX_BACKOFF_S, 2.0**attempts)

    async def _save(self, works: Sequence[_Work], *, release: bool = False) -> None:
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
        lost = await self._repo.save_many(updates, owner=self.owner)
        if lost:
            log.warning("privacy requests passed to another worker", extra={"requests": len(lost)})

"""The erasure pass: one account's claimed erasures (subject or tenant) moved through their phases together.

``closure -> suppress -> erase -> verify -> sweep_wait -> closure -> suppress -> erase -> verify ->
copies_expiring -> completed``: the identity closure first, then the suppression list (so records arriving from
now on are dropped), then every store's ``erase`` with all claimed requests of an account served by one operation
per store, then ``verify``; after ``privacy_sweep_delay_s`` the whole pass runs again to catch rows that landed in
between. A clean second verification leaves only the copies on the bus, which no erasure reaches: the request
drops its working set (the identifiers) and waits until the last of them is past its topic's retention
(``tapwire_privacy.bus_copies``), then completes, its record listing those copies and when they were gone.

Progress is saved before and after each delete (a store where nothing matched is saved with the next save), so
a worker killed at any point resumes where the record says: a store marked ``erased`` is not erased again, and
a step that was running when the worker died is simply repeated (every step is idempotent). A failing store
fails the request for this pass; other stores and requests go on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tapwire_core.clock import Clock
from tapwire_core.control.privacy.subject_keys import TENANT_WIDE, key_hash
from tapwire_core.settings import Settings
from tapwire_privacy import metrics
from tapwire_privacy.bus_copies import TopicLifetime, bus_copies, publication_ends
from tapwire_privacy.ledger import LedgerEntry
from tapwire_privacy.offboarding import ACCOUNT_DELETED, OFFBOARDING
from tapwire_privacy.offboarding.record import completion_record
from tapwire_privacy.records import RequestView, aware, iso
from tapwire_privacy.registry import Registry
from tapwire_privacy.repository import Completion, PrivacyRepository
from tapwire_privacy.stores.base import StoreHandler
from tapwire_privacy.worker.forwarding import Forwarding
from tapwire_privacy.worker.identities import close_identities
from tapwire_privacy.worker.progress import ProgressSaver, RequestWork

log = logging.getLogger(__name__)

COPIES_EXPIRING = "copies_expiring"


@dataclass
class _StoreChecks:
    """What every store's verification said of one pass's requests: per request id, each store's verdict, and
    which requests have mutations still running or residue found."""

    results: dict[str, dict[str, Any]]
    pending: set[str] = field(default_factory=set)
    residue: set[str] = field(default_factory=set)


class ErasurePass:
    def __init__(
        self,
        *,
        repository: PrivacyRepository,
        registry: Registry,
        settings: Settings,
        clock: Clock,
        saver: ProgressSaver,
        forwarding: Forwarding,
        bus_lifetimes: Sequence[TopicLifetime],
    ) -> None:
        self._repo = repository
        self._bus_lifetimes = bus_lifetimes
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._saver = saver
        self._forwarding = forwarding

    async def run(
        self, group: Sequence[RequestView], *, handlers: Sequence[StoreHandler] | None = None
    ) -> None:
        """Advance every erasure of ``group`` (one account's) as far as it can go now, then release them.
        ``handlers``: the stores to erase and verify (by default the registry's; an offboarding's add one)."""
        stores = list(self._registry.handlers if handlers is None else handlers)
        works = await self._saver.begin([RequestWork(view, dict(view.progress)) for view in group])
        works = await self._finish_expiring(works)
        _start_second_sweeps(works)
        await close_identities(works, working_sets=self._repo.working_sets, sources=self._registry.sources)
        await self._suppress([w for w in works if w.phase == "suppress" and not w.failed])
        await self._forward(works)
        await self._saver.save(works)
        await self._erase([w for w in works if w.phase == "erase" and not w.failed], stores)
        await self._verify([w for w in works if w.phase == "verify" and not w.failed], stores)
        await self._saver.save([w for w in works if w.phase != "completed"], release=True)

    async def _finish_expiring(self, works: list[RequestWork]) -> list[RequestWork]:
        """Complete (or release again) the requests waiting for their bus copies to expire; the others, which
        this pass moves on."""
        expiring = [w for w in works if w.phase == COPIES_EXPIRING]
        if not expiring:
            return works
        await self._copies_expired(expiring)
        await self._saver.save([w for w in expiring if w.phase != "completed"], release=True)
        return [w for w in works if w.phase not in (COPIES_EXPIRING, "completed")]

    async def _suppress(self, suppressing: list[RequestWork]) -> None:
        """Record the subjects in the ledger, then add their keys to the suppression list; each request that
        got there moves on to ``erase``."""
        if not suppressing:
            return
        await self._record_in_ledger(suppressing)
        suppressing = [w for w in suppressing if not w.failed]
        if not suppressing:
            return
        added = await self._repo.suppressions.add_many(
            [(w.view.account_id, w.id, w.keys) for w in suppressing],
            days=self._settings.privacy_suppression_days,
        )
        for work in suppressing:
            work.actions.append(("suppressed", "bus.suppression_list", {"new_entries": added[work.id]}))
            work.phase = "erase"

    async def _forward(self, works: list[RequestWork]) -> None:
        """Tell the recipients of the subjects' data, before any store is erased: what a recipient got is found
        through those stores. The second sweep forwards again what was sent to the subject after the first pass
        (found through the new rows only)."""
        for work in works:
            if work.phase == "erase" and not work.failed:
                await self._forwarding.forward(work, "erasure", None)

    async def _erase(self, erasing: list[RequestWork], stores: Sequence[StoreHandler]) -> None:
        """Erase every store of ``stores`` not yet erased for each request, one operation per store for all of
        them; each request that did not fail moves on to ``verify``."""
        for handler in stores:
            todo = [w for w in erasing if not w.failed and w.store(handler.name)["state"] != "erased"]
            if todo:
                await self._erase_store(handler, todo)
        for work in erasing:
            if not work.failed:
                work.phase = "verify"

    async def _record_in_ledger(self, works: list[RequestWork]) -> None:
        """Record the subjects in the erasure ledger before anything is erased, so no erasure is made without
        the record that repeats it after a restore. A store that fails fails the requests for this pass."""
        ledger = self._registry.ledger
        if ledger is None:
            return
        now = self._clock()
        try:
            salt = await self._repo.secrets.identifier_salt()
            entries = [
                LedgerEntry(work.view.account_id, hashed, work.id, now)
                for work in works
                for hashed in (
                    ([TENANT_WIDE, ACCOUNT_DELETED] if OFFBOARDING in work.progress else [TENANT_WIDE])
                    if work.keys is None
                    else sorted(key_hash(salt, work.view.account_id, key) for key in work.keys)
                )
            ]
            await ledger.record(entries)
        except Exception as exc:
            metrics.STORE_FAILURES.labels("ledger").inc()
            log.warning(
                "recording erasures in the ledger failed; will retry",
                extra={"requests": len(works), "error": type(exc).__name__},
                exc_info=True,
            )
            for work in works:
                work.fail("ledger", type(exc).__name__, state=work.progress.setdefault("ledger", {}))

    async def _erase_store(self, handler: StoreHandler, todo: list[RequestWork]) -> None:
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
                await self._saver.save(todo)
                await handler.erase(scopes)
        except Exception as exc:
            metrics.STORE_FAILURES.labels(handler.name).inc()
            log.warning(
                "privacy erase failed on a store; will retry",
                extra={"store": handler.name, "requests": len(todo), "error": type(exc).__name__},
                exc_info=True,
            )
            for work in todo:
                work.fail(handler.name, type(exc).__name__)
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
            await self._saver.save(todo)
        # A store where nothing was found is saved with the next save: repeating it after a crash costs one count.

    async def _verify(self, works: list[RequestWork], stores: Sequence[StoreHandler]) -> None:
        """Verify every store for ``works``, then move each on: back to ``erase`` on residue, to the sweep wait
        after the first clean pass, to waiting for the bus copies after the second (completed if gone)."""
        if not works:
            return
        checked = await self._check_stores(works, stores)
        if checked is None:
            return
        now = self._clock()
        expiring = [work for work in works if self._settle_verification(work, checked, now)]
        if expiring:
            # Nothing reads the identifiers any more: the stores are clean and the bus copies just expire.
            await self._repo.working_sets.discard([work.id for work in expiring])
        await self._copies_expired(expiring)

    async def _check_stores(
        self, works: list[RequestWork], stores: Sequence[StoreHandler]
    ) -> _StoreChecks | None:
        """Every store's verification of ``works``; a store with residue is marked pending again. None when a
        store fails, which fails every request of the pass."""
        checks = _StoreChecks({w.id: {} for w in works})
        for handler in stores:
            try:
                await handler.settle()
                found = await handler.verify([w.scope() for w in works])
            except Exception as exc:
                metrics.STORE_FAILURES.labels(handler.name).inc()
                for work in works:
                    work.fail(handler.name, type(exc).__name__)
                return None
            for work in works:
                verification = found[work.id]
                checks.results[work.id][handler.name] = verification.to_json()
                if verification.pending:
                    checks.pending.add(work.id)
                elif verification.residue:
                    checks.residue.add(work.id)
                    work.store(handler.name)["state"] = "pending"
        return checks

    def _settle_verification(self, work: RequestWork, checks: _StoreChecks, now: dt.datetime) -> bool:
        """Move one request on after its stores were checked; True when it now waits for its bus copies."""
        sweep = int(work.progress.get("sweep", 0))
        if work.id in checks.pending:
            work.progress["next_check"] = "mutations still running"
            return False
        if work.id in checks.residue:
            work.phase = "erase"
            work.actions.append(("residue_found", None, {"sweep": sweep + 1}))
            return False
        record = {"sweep": sweep + 1, "checked_at": iso(now), "stores": checks.results[work.id]}
        work.progress.setdefault("verifications", []).append(record)
        work.actions.append(("verified", None, {"sweep": sweep + 1}))
        if sweep == 0:
            work.phase = "sweep_wait"
            work.progress["sweep_due"] = iso(now + dt.timedelta(seconds=self._settings.privacy_sweep_delay_s))
            return False
        self._await_bus_copies(work, now)
        return True

    def _await_bus_copies(self, work: RequestWork, now: dt.datetime) -> None:
        """After the second clean verification: list the copies left on the bus and when the last is gone."""
        ended = publication_ends(self._settings, now)
        work.progress["bus_copies"] = bus_copies(self._bus_lifetimes, publication_ended=ended)
        work.progress["copies_gone_at"] = iso(
            ended + max(lifetime.longest for lifetime in self._bus_lifetimes)
        )
        work.phase = COPIES_EXPIRING
        work.actions.append(("bus_copies_expiring", None, {"until": work.progress["copies_gone_at"]}))

    async def _copies_expired(self, works: list[RequestWork]) -> None:
        """Complete the requests whose last bus copy is past its retention; the others wait for it (their
        release sets them due then)."""
        now = self._clock()
        gone = [w for w in works if aware(_parse(w.progress["copies_gone_at"])) <= now]
        for work in gone:
            work.phase = "completed"
        await self._complete([(work, work.progress["verifications"][-1]) for work in gone])

    async def _complete(self, finished: list[tuple[RequestWork, dict[str, Any]]]) -> None:
        if not finished:
            return
        await self._saver.save([work for work, _ in finished])
        completions = []
        for work, record in finished:
            work.end_pass()
            removed = {
                name: int(state.get("removed", 0)) for name, state in work.progress.get("stores", {}).items()
            }
            verification = {
                "result": "verified",
                "sweeps": len(work.progress.get("verifications", [])),
                "stores": record["stores"],
                "checked_at": record["checked_at"],
                "bus_copies": work.progress.get("bus_copies", []),
            }
            offboarding = work.progress.get(OFFBOARDING)
            if offboarding is not None:
                verification[OFFBOARDING] = completion_record(offboarding, removed, work.view, self._clock())
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
                    notify=offboarding is None,
                )
            )
        lost = await self._repo.leases.complete_many(completions, owner=self._saver.owner)
        for work, _ in finished:
            if work.id in lost:
                log.warning("lost the lease while completing a privacy request", extra={"request": work.id})
                continue
            metrics.COMPLETED.labels("erasure", "completed").inc()
            log.info("privacy request completed", extra={"request": work.id, "type": "erasure"})


def _parse(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


def _start_second_sweeps(works: list[RequestWork]) -> None:
    """The requests whose sweep delay is over start the whole pass again, every store pending."""
    for work in works:
        if work.phase == "sweep_wait":
            work.progress["sweep"] = 1
            work.phase = "closure"
            for state in work.progress.get("stores", {}).values():
                state["state"] = "pending"
            work.actions.append(("second_sweep_started", None, {}))

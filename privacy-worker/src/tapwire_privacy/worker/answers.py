"""Requests answered in one pass each: export (an archive of everything held), rectification, objection.

Each is served on its own, after the identity closure: a failing step fails the request for this pass (it backs
off and is retried); a finished one is completed with what was done, never with personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from tapwire_core.clock import Clock
from tapwire_core.control.privacy.subject_keys import key_hash
from tapwire_core.privacy.scope import Scope
from tapwire_core.settings import Settings
from tapwire_privacy import metrics
from tapwire_privacy.export_archive import ArchiveWriter
from tapwire_privacy.records import RequestView, iso
from tapwire_privacy.registry import Registry
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.stores.files import partial_archive_path
from tapwire_privacy.worker.forwarding import Forwarding
from tapwire_privacy.worker.identities import close_identities
from tapwire_privacy.worker.progress import ProgressSaver, RequestWork

log = logging.getLogger(__name__)


class Answers:
    def __init__(
        self,
        *,
        repository: PrivacyRepository,
        registry: Registry,
        settings: Settings,
        clock: Clock,
        saver: ProgressSaver,
        forwarding: Forwarding,
    ) -> None:
        self._repo = repository
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._saver = saver
        self._forwarding = forwarding

    @property
    def export_dir(self) -> Path:
        return self._settings.resolved_export_dir()

    async def run(self, view: RequestView) -> None:
        """Answer one export, rectification or objection, or fail it for this pass."""
        begun = await self._saver.begin([RequestWork(view, dict(view.progress))])
        if view.type == "export":
            # A pass that died while writing left a partial archive: this one starts afresh, or the request
            # stopped; either way it goes (the lease makes this worker the only one writing it).
            await asyncio.to_thread(partial_archive_path(self.export_dir, view.id).unlink, missing_ok=True)
        if not begun:
            return
        work = begun[0]
        await close_identities([work], working_sets=self._repo.working_sets, sources=self._registry.sources)
        if work.failed:
            await self._saver.save([work], release=True)
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
            work.fail(view.type, type(exc).__name__)
            await self._saver.save([work], release=True)

    async def _export(self, work: RequestWork, scope: Scope) -> None:
        counts = await self._write_archive(work, scope)
        salt = await self._repo.secrets.identifier_salt()
        work.phase = "completed"
        work.progress["stores"] = {name: {"state": "exported", "rows": rows} for name, rows in counts.items()}
        if scope.keys is not None:
            work.progress["archive_key_hashes"] = sorted(
                key_hash(salt, scope.account_id, key) for key in scope.keys
            )
        expires = self._clock() + dt.timedelta(days=self._settings.privacy_export_retention_days)
        work.end_pass()
        await self._repo.leases.complete(
            work.id,
            owner=self._saver.owner,
            progress=work.progress,
            verification=None,
            export_expires_at=expires,
            detail={"rows": counts},
        )
        metrics.COMPLETED.labels("export", "completed").inc()

    async def _write_archive(self, work: RequestWork, scope: Scope) -> dict[str, int]:
        """Stream every store's rows into the request's archive, batch by batch (the compression in a thread),
        then the manifest; returns the rows per store. A failure leaves no archive behind."""
        writer = await asyncio.to_thread(ArchiveWriter, self.export_dir, work.id)
        try:
            for handler in self._registry.handlers:
                await asyncio.to_thread(writer.begin_store, handler.name)
                async with contextlib.aclosing(handler.export(scope)) as batches:
                    async for rows in batches:
                        await asyncio.to_thread(writer.write, rows)
            manifest: dict[str, Any] = {
                "request_id": work.id,
                "account_id": work.view.account_id,
                "scope": work.view.scope,
                "generated_at": iso(self._clock()),
                "identifiers_covered": None if scope.keys is None else len(scope.keys),
                "recipients": await self._forwarding.received(scope),
            }
            await asyncio.to_thread(writer.finish, manifest)
        except BaseException:
            writer.discard()
            raise
        return dict(writer.counts)

    async def _rectify(self, work: RequestWork, scope: Scope) -> None:
        subject = await self._repo.working_sets.get(work.id)
        fields = dict((subject.payload if subject else {}).get("fields", {}))
        changed: dict[str, int] = {}
        for handler in self._registry.handlers:
            changed[handler.name] = await handler.rectify(scope, fields)
        await self._forwarding.forward(work, "rectify", fields)
        if work.failed:
            await self._saver.save([work], release=True)
            return
        await self._saver.save([work])
        work.phase = "completed"
        work.progress["stores"] = {
            name: {"state": "rectified", "rows": n} for name, n in changed.items() if n
        }
        work.end_pass()
        await self._repo.leases.complete(
            work.id,
            owner=self._saver.owner,
            progress=work.progress,
            verification=None,
            detail={
                "changed": changed,
                "fields": len(fields),
                "recipients": work.progress.get("recipients", {}),
            },
        )
        metrics.COMPLETED.labels("rectify", "completed").inc()

    async def _object(self, work: RequestWork, scope: Scope) -> None:
        keys = sorted(scope.keys or ())
        added = await self._repo.objections.add(account_id=scope.account_id, request_id=work.id, keys=keys)
        work.phase = "completed"
        work.progress["stores"] = {"control.marketing_objections": {"state": "recorded", "rows": added}}
        work.end_pass()
        await self._repo.leases.complete(
            work.id,
            owner=self._saver.owner,
            progress=work.progress,
            verification=None,
            detail={"new_entries": added},
        )
        metrics.COMPLETED.labels("objection", "completed").inc()

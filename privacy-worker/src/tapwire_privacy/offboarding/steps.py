"""An offboarding's first two phases, one pass each: access revoked, then the whole account streamed to one archive.

Progress is saved after each (``progress.offboarding``), so a worker killed during the export starts it afresh on
resume (the half-written archive is removed first) and never revokes or exports twice what was saved as done.
The archive holds every store: the warehouse tables and export-archive list through their handlers, every control
table's rows of the account through ``account_rows`` (hashes of secrets left out), batch by batch; memory holds one
batch. Its SHA-256, size and rows per store go into the record; the erasure's phases follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tapwire_core.clock import Clock
from tapwire_core.privacy.scope import Scope
from tapwire_core.settings import Settings
from tapwire_privacy.export_archive import ArchiveWriter
from tapwire_privacy.offboarding import EXPORT, REVOKE, offboarding_of
from tapwire_privacy.offboarding.account_rows import REDACTED, account_tables
from tapwire_privacy.offboarding.handler import revoke_access, table_batches
from tapwire_privacy.records import RequestView, iso
from tapwire_privacy.registry import Registry
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.stores.files import partial_archive_path
from tapwire_privacy.worker.progress import ProgressSaver, RequestWork

log = logging.getLogger(__name__)

_DIGEST_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_DIGEST_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class OffboardingSteps:
    def __init__(
        self,
        *,
        repository: PrivacyRepository,
        registry: Registry,
        settings: Settings,
        clock: Clock,
        saver: ProgressSaver,
        on_revoked: Callable[[str], None] | None = None,
    ) -> None:
        """``on_revoked``: told the account id once its access is revoked (this process's credential caches
        forget it at once; other processes' expire within a minute)."""
        self._on_revoked = on_revoked
        self._repo = repository
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._saver = saver

    @property
    def export_dir(self) -> Path:
        return self._settings.resolved_export_dir()

    async def run(self, view: RequestView) -> None:
        """Revoke, then export; on success the request goes on to the erasure's phases at once."""
        begun = await self._saver.begin([RequestWork(view, dict(view.progress))])
        # A pass that died while writing left a partial archive: this one starts afresh (or the request stopped).
        await asyncio.to_thread(partial_archive_path(self.export_dir, view.id).unlink, missing_ok=True)
        if not begun:
            return
        work = begun[0]
        step = work.phase
        try:
            if work.phase == REVOKE:
                await self._revoke(work)
                step = work.phase
            if work.phase == EXPORT and "reapplies" in offboarding_of(work.progress):
                work.phase = "closure"  # the customer had the archive the first time
            if work.phase == EXPORT:
                await self._export(work)
        except Exception as exc:
            log.warning(
                "offboarding step failed; will retry",
                extra={"request": view.id, "step": step, "error": type(exc).__name__},
                exc_info=True,
            )
            work.fail(f"offboarding.{step}", type(exc).__name__, state=offboarding_of(work.progress))
        await self._saver.save([work], release=True)

    async def _revoke(self, work: RequestWork) -> None:
        revoked = await revoke_access(self._repo.engine, work.view.account_id, self._clock())
        if self._on_revoked is not None:
            self._on_revoked(work.view.account_id)
        offboarding_of(work.progress)["revoked"] = {**revoked, "at": iso(self._clock())}
        work.actions.append(("access_revoked", "control.credentials", revoked))
        work.phase = EXPORT
        await self._saver.save([work])

    async def _export(self, work: RequestWork) -> None:
        scope = Scope(work.id, work.view.account_id, None)
        path, counts = await self._write_archive(work, scope)
        digest = await asyncio.to_thread(file_sha256, path)
        size = path.stat().st_size
        expires = self._clock() + dt.timedelta(days=self._settings.privacy_export_retention_days)
        offboarding_of(work.progress)["archive"] = {
            "sha256": digest,
            "bytes": size,
            "rows": counts,
            "written_at": iso(self._clock()),
            "expires_at": iso(expires),
        }
        await self._repo.exports.set_expiry(work.id, expires)
        work.actions.append(("archive_written", "files.export_archives", {"rows": sum(counts.values())}))
        work.phase = "closure"

    async def _write_archive(self, work: RequestWork, scope: Scope) -> tuple[Path, dict[str, int]]:
        writer = await asyncio.to_thread(ArchiveWriter, self.export_dir, work.id)
        engine = self._repo.engine
        try:
            for handler in self._registry.handlers:
                if handler.name.startswith("control."):
                    continue  # every control table is read below, whole
                await asyncio.to_thread(writer.begin_store, handler.name)
                async with contextlib.aclosing(handler.export(scope)) as batches:
                    async for rows in batches:
                        await asyncio.to_thread(writer.write, rows)
            for table in account_tables():
                await asyncio.to_thread(writer.begin_store, f"control.{table.name}")
                async with contextlib.aclosing(table_batches(engine, table, scope.account_id)) as batches:
                    async for rows in batches:
                        await asyncio.to_thread(writer.write, rows)
            manifest: dict[str, Any] = {
                "request_id": work.id,
                "account_id": work.view.account_id,
                "scope": "account",
                "purpose": "account offboarding: everything the account holds, before it is deleted",
                "generated_at": iso(self._clock()),
                "left_out": {table: sorted(columns) for table, columns in REDACTED.items()},
                "changed_before_export": offboarding_of(work.progress).get("revoked", {}),
            }
            path = await asyncio.to_thread(writer.finish, manifest)
        except BaseException:
            writer.discard()
            raise
        return path, dict(writer.counts)

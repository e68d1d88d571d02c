"""Privacy handler for export archives on disk: an erasure also removes earlier exports of the subject.

An export request remembers the salted hashes of the keys its archive covers (in its progress record), so an
erasure can find the archives that hold the subject's data without the archives being read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.privacy.models import PrivacyRequestRow
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.records import iso
from tapwire_privacy.stores.base import StoreHandler, Verification


def archive_path(directory: Path, request_id: str) -> Path:
    return directory / f"{request_id}.zip"


def partial_archive_path(directory: Path, request_id: str) -> Path:
    """Where an archive is written until it is complete (then renamed to ``archive_path``)."""
    return directory / f"{request_id}.zip.partial"


class ExportArchivesHandler(StoreHandler):
    name = "files.export_archives"

    def __init__(self, engine: AsyncEngine, directory: Path) -> None:
        self._engine = engine
        self._directory = directory

    async def _archives(self, scopes: Sequence[Scope]) -> dict[str, list[PrivacyRequestRow]]:
        """Per request id, the live export archives (on disk) holding data of its scope; one transaction."""
        found: dict[str, list[PrivacyRequestRow]] = {}
        async with AsyncSession(self._engine, expire_on_commit=False) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            live: dict[str, list[PrivacyRequestRow]] = {}
            for account_id in {scope.account_id for scope in scopes}:
                rows = await session.scalars(
                    select(PrivacyRequestRow).where(
                        PrivacyRequestRow.account_id == account_id,
                        PrivacyRequestRow.type == "export",
                        PrivacyRequestRow.export_erased_at.is_(None),
                    )
                )
                live[account_id] = [r for r in rows if archive_path(self._directory, r.id).exists()]
        for scope in scopes:
            candidates = [r for r in live[scope.account_id] if r.id != scope.request_id]
            if scope.keys is None:
                found[scope.request_id] = candidates
                continue
            hashes = {key_hash(salt, scope.account_id, key) for key in scope.keys}
            found[scope.request_id] = [
                r for r in candidates if hashes & set((r.progress or {}).get("archive_key_hashes", []))
            ]
        return found

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        # One entry per live archive of the account: bounded by the exports' retention.
        yield [
            {
                "request_id": row.id,
                "created_at": iso(row.completed_at),
                "expires_at": iso(row.export_expires_at),
            }
            for row in (await self._archives([scope]))[scope.request_id]
        ]

    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        return {request_id: len(rows) for request_id, rows in (await self._archives(scopes)).items()}

    async def erase(self, scopes: Sequence[Scope]) -> None:
        for rows in (await self._archives(scopes)).values():
            for row in rows:
                archive_path(self._directory, row.id).unlink(missing_ok=True)

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        counts = await self.count(scopes)
        return {
            request_id: Verification(
                residue=n,
                pending=False,
                checked=f"no export archive of the subject left under {self._directory}",
            )
            for request_id, n in counts.items()
        }

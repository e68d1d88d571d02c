"""An export's archive (an export request's, or an account offboarding's), as its request record tracks it: when it
expires and when it was erased.

The archive itself is a file (``stores.files``); the record remembers, until the archive is erased, the salted
hashes of the keys it covers, so an erasure finds the subject's archives without reading them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from tapwire_core.control.privacy.models import PrivacyRequestRow
from tapwire_privacy.records import RequestView
from tapwire_privacy.repository.audit import AuditLog
from tapwire_privacy.repository.requests import request_row
from tapwire_privacy.repository.transactions import Transactions


class ExportRecords:
    def __init__(self, transactions: Transactions, audit: AuditLog) -> None:
        self._tx = transactions
        self._audit = audit

    async def expired(self) -> list[RequestView]:
        """Requests whose archive is past its expiry and not yet erased."""
        now = self._tx.clock()
        async with self._tx.begin() as session:
            rows = await session.scalars(
                select(PrivacyRequestRow).where(
                    PrivacyRequestRow.export_expires_at <= now,
                    PrivacyRequestRow.export_erased_at.is_(None),
                )
            )
            return [RequestView.of(row) for row in rows]

    async def set_expiry(self, request_id: str, expires_at: dt.datetime) -> None:
        """When the request's archive (written before the request completes: an offboarding's) is erased."""
        async with self._tx.begin() as session:
            await session.execute(
                update(PrivacyRequestRow)
                .where(PrivacyRequestRow.id == request_id)
                .values(export_expires_at=expires_at)
                .execution_options(synchronize_session=False)
            )

    async def mark_erased(self, request_id: str) -> None:
        """Record that the request's archive was deleted (audited)."""
        async with self._tx.begin() as session:
            row = await request_row(session, request_id, None)
            row.export_erased_at = self._tx.clock()
            # The hashes only served to find this archive for a later erasure; with it gone, they go too.
            row.progress = {k: v for k, v in (row.progress or {}).items() if k != "archive_key_hashes"}
            self._audit.add(session, row, "export_archive_erased", store="export_archives")

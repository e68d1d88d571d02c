"""How long privacy records are kept: request records, audit entries and notices for 24 months (the proof that a
request was answered), suppression list entries until their own expiry."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete

from tapwire_core.control.privacy.models import (
    PrivacyAuditRow,
    PrivacyNoticeRow,
    PrivacyRequestRow,
    SuppressionRow,
)
from tapwire_privacy.repository.transactions import Transactions


class RecordRetention:
    def __init__(self, transactions: Transactions, *, retention: dt.timedelta) -> None:
        self._tx = transactions
        self._retention = retention

    async def purge_expired(self) -> dict[str, int]:
        """Drop request records, audit rows and notices past the retention, and suppressions past their expiry.
        Returns how many rows of each went."""
        now = self._tx.clock()
        async with self._tx.begin() as session:
            requests = await session.execute(
                delete(PrivacyRequestRow).where(PrivacyRequestRow.retain_until < now)
            )
            audit = await session.execute(
                delete(PrivacyAuditRow).where(PrivacyAuditRow.at < now - self._retention)
            )
            notices = await session.execute(
                delete(PrivacyNoticeRow).where(PrivacyNoticeRow.created_at < now - self._retention)
            )
            suppressions = await session.execute(
                delete(SuppressionRow).where(SuppressionRow.expires_at < now)
            )
        return {
            "requests": requests.rowcount,  # type: ignore[attr-defined]
            "audit": audit.rowcount,  # type: ignore[attr-defined]
            "notices": notices.rowcount,  # type: ignore[attr-defined]
            "suppressions": suppressions.rowcount,  # type: ignore[attr-defined]
        }

"""The worker's periodic chores: expired export archives, the retention purge, the deadline gauges, notices."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Final

from tapwire_core.clock import Clock
from tapwire_privacy import metrics
from tapwire_privacy.deadlines import is_near_due
from tapwire_privacy.notices import WebhookNotifier
from tapwire_privacy.records import RequestView, iso
from tapwire_privacy.repository import PrivacyRepository
from tapwire_privacy.stores.files import archive_path
from tapwire_privacy.worker.progress import MAX_BACKOFF_S

log = logging.getLogger(__name__)

NEAR_DUE: Final = dt.timedelta(days=7)


class Housekeeping:
    def __init__(
        self,
        *,
        repository: PrivacyRepository,
        clock: Clock,
        export_dir: Path,
        notifier: WebhookNotifier | None,
    ) -> None:
        self._repo = repository
        self._clock = clock
        self._export_dir = export_dir
        self._notifier = notifier

    async def run(self) -> None:
        """Expired archives, retention purge, deadline gauges and the overdue log line, notices."""
        for view in await self._repo.exports.expired():
            archive_path(self._export_dir, view.id).unlink(missing_ok=True)
            await self._repo.exports.mark_erased(view.id)
        purged = await self._repo.retention.purge_expired()
        if any(purged.values()):
            log.info("privacy records past retention purged", extra=purged)
        await self.refresh_deadline_metrics()
        await self.deliver_notices()

    async def refresh_deadline_metrics(self) -> tuple[int, int]:
        """Set the overdue, near-due, failed and late-acknowledgement gauges, logging each overdue request and
        each late acknowledgement. Returns (overdue, near due)."""
        now = self._clock()
        overdue = near = failed = 0
        async for page in self._repo.requests.open_pages():
            for view in page:
                failed += view.status == "failed"
                if view.overdue(now):
                    overdue += 1
                    _log_overdue(view)
                elif is_near_due(view.effective_due_at, now=now, within=NEAR_DUE) and not _done_in_time(view):
                    near += 1
        metrics.OVERDUE.set(overdue)
        metrics.NEAR_DUE.set(near)
        metrics.FAILED.set(failed)
        late = await self._repo.notices.late_acknowledgements()
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
        """Post every due notice to its account's webhook; a failed one is retried with backoff."""
        if self._notifier is None:
            return
        for notice in await self._repo.notices.due():
            error = await self._notifier.deliver(notice.account_id, notice.kind, notice.payload)
            await self._repo.notices.record_delivery(
                notice.id, error=error, retry_in_s=min(MAX_BACKOFF_S, 30.0 * 2 ** min(notice.attempts, 10))
            )


def _log_overdue(view: RequestView) -> None:
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


def _done_in_time(view: RequestView) -> bool:
    """An erasure whose stores are clean and whose last bus copy is gone before its deadline: it completes
    then by itself, so it is no reason to warn."""
    gone_at = view.progress.get("copies_gone_at")
    return (
        view.progress.get("phase") == "copies_expiring"
        and isinstance(gone_at, str)
        and dt.datetime.fromisoformat(gone_at.replace("Z", "+00:00")) <= view.effective_due_at
    )

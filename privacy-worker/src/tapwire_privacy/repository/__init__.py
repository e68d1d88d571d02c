"""Privacy's tables in the control store, one part per thing stored.

- ``requests``: the request records, their deadlines and the customer's actions on them;
- ``leases``: the worker's side of the same records (claiming due requests, saving progress, completing);
- ``working_sets``: the identifiers an open request acts on (the only personal data here);
- ``audit``: the append-only log of every action;
- ``notices``: what the customer must be told, until delivered;
- ``suppressions`` and ``objections``: entries of the suppression list and of the marketing objection list;
- ``exports``: export archives' expiry and erasure, as their request records track them;
- ``secrets``: the deployment's hash salt and link-signing key;
- ``retention``: the purge of records past their retention.

Every method opens its own short transaction on the control store's engine; a change and everything it implies
(audit entries, notices, the working set) is written in one. Timestamps come from the injected clock.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.clock import Clock
from tapwire_privacy.deadlines import ExtensionRefused
from tapwire_privacy.repository.audit import AuditAction, AuditLog
from tapwire_privacy.repository.exports import ExportRecords
from tapwire_privacy.repository.leases import Completion, ProgressUpdate, RequestLeases
from tapwire_privacy.repository.notices import ACKNOWLEDGEMENT, Notice, NoticeQueue
from tapwire_privacy.repository.requests import RequestConflict, RequestNotFound, RequestRecords
from tapwire_privacy.repository.retention import RecordRetention
from tapwire_privacy.repository.secrets import DeploymentSecrets
from tapwire_privacy.repository.suppressions import ObjectionEntries, SuppressionEntries
from tapwire_privacy.repository.transactions import Transactions
from tapwire_privacy.repository.working_sets import WorkingSet, WorkingSets


class PrivacyRepository:
    """Every part, on one engine and one clock. ``record_retention_days`` is how long request records, audit
    entries and notices are kept (24 months by default)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock, record_retention_days: int = 730) -> None:
        transactions = Transactions(engine, clock=clock)
        retention = dt.timedelta(days=record_retention_days)
        self.clock = clock
        self.engine = engine
        self.audit = AuditLog(transactions)
        self.notices = NoticeQueue(transactions, self.audit)
        self.working_sets = WorkingSets(transactions)
        self.requests = RequestRecords(
            transactions,
            audit=self.audit,
            notices=self.notices,
            working_sets=self.working_sets,
            retention=retention,
        )
        self.leases = RequestLeases(
            transactions, audit=self.audit, notices=self.notices, working_sets=self.working_sets
        )
        self.suppressions = SuppressionEntries(transactions)
        self.objections = ObjectionEntries(transactions)
        self.exports = ExportRecords(transactions, self.audit)
        self.secrets = DeploymentSecrets(transactions)
        self.retention = RecordRetention(transactions, retention=retention)


__all__ = [
    "ACKNOWLEDGEMENT",
    "AuditAction",
    "Completion",
    "ExtensionRefused",
    "Notice",
    "PrivacyRepository",
    "ProgressUpdate",
    "RequestConflict",
    "RequestNotFound",
    "WorkingSet",
]

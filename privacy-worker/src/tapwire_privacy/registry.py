"""Which handler covers which table, and the handlers and closure sources one worker runs with.

Every table in the schemas (``schemas.warehouse_tables`` / ``schemas.control_tables``) must appear here, either
covered by a handler or exempt with the reason it holds no end-user data. ``coverage_gaps`` lists the tables
that are neither; the registry test fails on any, so a new table cannot ship without a privacy decision.

The identity graph and the messaging tables live in the control database with their models in ``tapwire_core``, so
their handlers are built in here (``stores.identity``, ``stores.messaging``) and the graph is a closure source.
Stores built elsewhere plug in through ``extra_handlers`` and ``extra_sources`` and name the tables they cover in
``extra_coverage``; services that send data out (messaging's providers and webhooks) register ``data_recipients``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.identity.graph import IdentityGraph
from tapwire_core.identity.keys import parse_identifier
from tapwire_core.privacy.data_recipients import DataRecipient
from tapwire_core.warehouse import Warehouse
from tapwire_privacy.closure import Candidates, ClosureSource, LinkedIdentifierSource
from tapwire_privacy.ledger import ErasureLedger
from tapwire_privacy.offboarding.handler import AccountRowsHandler
from tapwire_privacy.schemas import control_tables, warehouse_projections, warehouse_tables
from tapwire_privacy.stores.aggregate_releases import AggregateReleasesHandler
from tapwire_privacy.stores.base import StoreHandler
from tapwire_privacy.stores.control import (
    MarketingObjectionsHandler,
    SuppressionsHandler,
    TrackingOptOutsHandler,
)
from tapwire_privacy.stores.email_feedback import EmailFeedbackHandler, EmailSuppressionsHandler
from tapwire_privacy.stores.files import ExportArchivesHandler
from tapwire_privacy.stores.identity import IdentityGraphHandler
from tapwire_privacy.stores.journeys import JourneyPositionsHandler
from tapwire_privacy.stores.messaging import (
    CampaignsHandler,
    ConsentHandler,
    InteractionsHandler,
    OutboxHandler,
)
from tapwire_privacy.stores.sdk_messages import SdkMessagesHandler
from tapwire_privacy.stores.trigger_timers import TriggerTimersHandler
from tapwire_privacy.stores.warehouse import WAREHOUSE_SPECS, WarehouseTableHandler
from tapwire_privacy.stores.warehouse_links import AliasLinks, IdentifierColumnLinks, ProfilePropertyLinks


@dataclass(frozen=True)
class Exempt:
    """A table with no end-user personal data, and why."""

    reason: str


Coverage = str | Exempt
"""A handler name, or an exemption."""

WAREHOUSE_COVERAGE: Final[dict[str, Coverage]] = {
    **{table: f"warehouse.{table}" for table in WAREHOUSE_SPECS},
    "privacy_erasure_ledger": Exempt(
        "the erasure ledger's warehouse copy: salted hashes of erased identifiers, no identifier; what erases a "
        "restored subject again"
    ),
}

CONTROL_COVERAGE: Final[dict[str, Coverage]] = {
    "accounts": Exempt("the customer's own account record; no end-user data"),
    "credentials": Exempt("hashed API secrets of the customer; no end-user data"),
    "privacy_requests": Exempt(
        "request records: type, dates, outcome, a salted hash of the subject; kept 24 months as proof"
    ),
    "privacy_audit": Exempt("actions, store names and counts; no personal data; kept 24 months"),
    "privacy_notices": Exempt("notices to the customer: request ids, dates, extension reasons"),
    "privacy_keys": Exempt("deployment secrets (hash salt, link-signing key)"),
    "privacy_request_subjects": Exempt(
        "the open request's working set (the identifiers being acted on); deleted in the completion transaction"
    ),
    "privacy_erasure_ledger": Exempt(
        "the erasure ledger: salted hashes of erased identifiers and request ids, no identifier; what erases a "
        "restored subject again"
    ),
    "privacy_suppressions": "control.privacy_suppressions",
    "marketing_objections": "control.marketing_objections",
    "tracking_opt_outs": "control.tracking_opt_outs",
    "identity_nodes": "control.identity_graph",
    "identity_edges": "control.identity_graph",
    "outbox": "control.outbox",
    "message_consent": "control.message_consent",
    "message_interactions": "control.message_interactions",
    "campaigns": "control.campaigns",
    "email_feedback": "control.email_feedback",
    "email_suppressions": "control.email_suppressions",
    "trigger_timers": "control.trigger_timers",
    "sdk_messages": "control.sdk_messages",
    "sdk_message_keys": "control.sdk_messages",
    "journey_positions": "control.journey_positions",
    "journey_history": "control.journey_positions",
    "journeys": Exempt("the customer's journey definitions (names, status, versions); no end-user data"),
    "journey_versions": Exempt(
        "journey step graphs written by the customer's staff (like saved segments), not data collected from end users"
    ),
    "segments": Exempt(
        "saved segments are the customer's audience rules (CQL) written by the customer's staff, not data collected "
        "from end users; a definition naming one person's value is the customer's own content, which the customer "
        "(the controller) edits or deletes through the segments API"
    ),
    "console_users": Exempt(
        "the customer's staff who sign in to the console, not end users; each sees, changes, exports and deletes "
        "their own record under My profile (/account/v1/me)"
    ),
    "console_sessions": Exempt("sign-in sessions of the customer's staff: hashed tokens, role, times"),
    "console_sign_in_throttle": Exempt("failed sign-in counts under hashed keys; no personal data"),
    "audit_log": Exempt(
        "actions of the customer's staff in the console; a deleted console user's entries lose their email"
    ),
    "aggregate_releases": "control.aggregate_releases",
    "query_jobs": Exempt(
        "answers of the customer's counts that outlived their request: aggregates over its users (counts, trends, "
        "most frequent values), no user key; kept 10 minutes, far inside any erasure deadline"
    ),
}

FILE_STORES: Final[dict[str, Coverage]] = {"export_archives": "files.export_archives"}


def coverage_gaps(
    handlers: Sequence[StoreHandler], extra_coverage: Mapping[str, Mapping[str, Coverage]] | None = None
) -> list[str]:
    """``store:table`` for every table without a handler or an exemption, and for coverage naming a handler
    that is not among ``handlers``. Empty when every table has a privacy decision."""
    names = {handler.name for handler in handlers}
    declared = {
        "warehouse": dict(WAREHOUSE_COVERAGE),
        "control": dict(CONTROL_COVERAGE),
        "files": dict(FILE_STORES),
    }
    for store, tables in (extra_coverage or {}).items():
        declared.setdefault(store, {}).update(tables)
    existing: dict[str, set[str]] = {
        "warehouse": set(warehouse_tables()),
        "control": set(control_tables()),
        "files": set(FILE_STORES),
    }
    gaps = _projection_gaps()
    for store, present in existing.items():
        for table in sorted(present):
            coverage = declared[store].get(table)
            if coverage is None:
                gaps.append(f"{store}:{table} has no privacy handler and no exemption")
            elif isinstance(coverage, str) and coverage not in names:
                gaps.append(f"{store}:{table} names handler {coverage!r}, which is not registered")
    return gaps


def _projection_gaps() -> list[str]:
    """A projection is a copy of its table's rows: the erasure's proof must count it, and can only do so with
    the table's condition when the copy holds every column that names a subject."""
    gaps = []
    for name, (table, columns) in warehouse_projections().items():
        spec = WAREHOUSE_SPECS.get(table)
        if spec is None or name not in spec.projections:
            gaps.append(f"warehouse:{table} projection {name} is not counted by the erasure's proof")
            continue
        missing = sorted({key.column for key in spec.key_columns} - set(columns))
        if missing:
            gaps.append(f"warehouse:{table} projection {name} lacks the subject columns {missing}")
    return gaps


@dataclass
class Registry:
    """The handlers (in erasure order) and closure sources a worker uses."""

    handlers: list[StoreHandler]
    sources: list[ClosureSource]
    data_recipients: list[DataRecipient] = field(default_factory=list)
    extra_coverage: dict[str, dict[str, Coverage]] = field(default_factory=dict)
    ledger: ErasureLedger | None = None
    """Where erasures are recorded for re-erasing after a restore (None: not recorded, for tests of parts)."""
    offboarding_handlers: list[StoreHandler] = field(default_factory=list)
    """Stores an account's offboarding erases after ``handlers``: every control table's rows of the account."""

    def handler(self, name: str) -> StoreHandler:
        for handler in self.handlers:
            if handler.name == name:
                return handler
        raise KeyError(name)


def _known_to(graph: IdentityGraph) -> Candidates:
    """The keys the graph holds a node for, in one query; a key that is not a plain user key (a bare value the
    graph would look up under every kind) is always a candidate."""

    async def candidates(account_id: str, keys: frozenset[str]) -> set[str]:
        plain = {key for key in keys if parse_identifier(key) == [key]}
        return await graph.existing(account_id, sorted(plain)) | (keys - plain)

    return candidates


def default_registry(
    *,
    warehouse: Warehouse,
    engine: AsyncEngine,
    export_dir: Path,
    cluster: str | None = None,
    extra_handlers: Sequence[StoreHandler] = (),
    extra_sources: Sequence[ClosureSource] = (),
    data_recipients: Sequence[DataRecipient] = (),
    extra_coverage: Mapping[str, Mapping[str, Coverage]] | None = None,
) -> Registry:
    """Every built-in handler and closure source, plus the ones other services contribute."""
    handlers: list[StoreHandler] = [
        WarehouseTableHandler(spec, warehouse, cluster=cluster) for spec in WAREHOUSE_SPECS.values()
    ]
    graph = IdentityGraph(engine)
    handlers += [
        IdentityGraphHandler(engine, graph, warehouse),
        OutboxHandler(engine),
        InteractionsHandler(engine),
        ConsentHandler(engine),
        CampaignsHandler(engine),
        EmailFeedbackHandler(engine),
        EmailSuppressionsHandler(engine),
        TriggerTimersHandler(engine),
        SdkMessagesHandler(engine),
        JourneyPositionsHandler(engine),
        AggregateReleasesHandler(engine),
        MarketingObjectionsHandler(engine),
        SuppressionsHandler(engine),
        TrackingOptOutsHandler(engine),
        ExportArchivesHandler(engine, export_dir),
        *extra_handlers,
    ]
    sources: list[ClosureSource] = [
        IdentifierColumnLinks(warehouse, "events"),
        IdentifierColumnLinks(warehouse, "profiles"),
        ProfilePropertyLinks(warehouse),
        AliasLinks(warehouse),
        LinkedIdentifierSource("identity_graph", graph.linked_identifiers, candidates=_known_to(graph)),
        *extra_sources,
    ]
    return Registry(
        handlers=handlers,
        sources=sources,
        data_recipients=list(data_recipients),
        extra_coverage={store: dict(tables) for store, tables in (extra_coverage or {}).items()},
        ledger=ErasureLedger(engine, warehouse),
        offboarding_handlers=[AccountRowsHandler(engine)],
    )

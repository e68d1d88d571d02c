"""The privacy service's Prometheus metrics (on the process-wide registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from tapwire_core.metrics import REGISTRY

REQUESTS = Counter(
    "tapwire_privacy_requests_total",
    "Privacy requests received, by type and channel.",
    ["type", "channel"],
    registry=REGISTRY,
)
COMPLETED = Counter(
    "tapwire_privacy_requests_completed_total",
    "Privacy requests closed, by type and outcome.",
    ["type", "outcome"],
    registry=REGISTRY,
)
OVERDUE = Gauge(
    "tapwire_privacy_requests_overdue",
    "Open privacy requests past their (extended) deadline.",
    registry=REGISTRY,
)
NEAR_DUE = Gauge(
    "tapwire_privacy_requests_near_due",
    "Open privacy requests due within the next seven days.",
    registry=REGISTRY,
)
ROWS_ERASED = Counter(
    "tapwire_privacy_rows_erased_total",
    "Rows removed by erasure, by store.",
    ["store"],
    registry=REGISTRY,
)
STORE_FAILURES = Counter(
    "tapwire_privacy_store_failures_total",
    "Failed privacy operations on a store (retried with backoff), by store.",
    ["store"],
    registry=REGISTRY,
)
BATCH_SUBJECTS = Counter(
    "tapwire_privacy_batched_subjects_total",
    "Subjects erased through a shared (batched) mutation.",
    registry=REGISTRY,
)
FAILED = Gauge(
    "tapwire_privacy_requests_failed",
    "Privacy requests that stopped retrying (status failed) and wait for an operator to re-queue them.",
    registry=REGISTRY,
)
STOPPED = Counter(
    "tapwire_privacy_requests_stopped_total",
    "Privacy requests that stopped retrying and wait for an operator (status failed), by type and cause: "
    "errors (too many failed passes) or abandoned (too many passes that never ended, e.g. a worker killed "
    "for memory).",
    ["type", "cause"],
    registry=REGISTRY,
)
UNACKNOWLEDGED = Gauge(
    "tapwire_privacy_acknowledgements_overdue",
    "Open CCPA requests whose acknowledgement of receipt was not delivered by its deadline.",
    registry=REGISTRY,
)

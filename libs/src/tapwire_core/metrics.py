"""Prometheus metrics shared by every service. One registry per process; names are a contract with dashboards."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "tapwire_http_requests_total",
    "HTTP requests by route and status code.",
    ["route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "tapwire_http_request_seconds",
    "HTTP request latency by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
RECORDS = Counter(
    "tapwire_ingest_records_total",
    "Ingested records by outcome (accepted/rejected) and rejection reason code.",
    ["source", "outcome", "reason"],
    registry=REGISTRY,
)
BUS_PUBLISH = Histogram(
    "tapwire_bus_publish_seconds",
    "Time until the bus confirmed a durable write of one request's records.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
BUS_FAILURES = Counter(
    "tapwire_bus_publish_failures_total",
    "Publishes the bus could not confirm (answered 503).",
    registry=REGISTRY,
)
LOADER_BATCH_ROWS = Histogram(
    "tapwire_loader_batch_rows",
    "Rows per loader insert batch.",
    buckets=(1, 10, 100, 500, 1000, 5000, 10000, 25000, 50000, 100000),
    registry=REGISTRY,
)
LOADER_INSERT = Histogram(
    "tapwire_loader_insert_seconds",
    "Warehouse insert time per loader batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
LOADER_ROWS = Counter(
    "tapwire_loader_rows_total",
    "Rows written by the loader, by table.",
    ["table"],
    registry=REGISTRY,
)
LOADER_LAG = Gauge(
    "tapwire_loader_lag_records",
    "Records on the bus not yet committed by the loader, per partition: the lag in bus messages times the "
    "records per message the loader has been seeing (a message packs many records).",
    ["topic", "partition"],
    registry=REGISTRY,
)
LOADER_LAG_MESSAGES = Gauge(
    "tapwire_loader_lag_messages",
    "Bus messages not yet committed by the loader, per partition (Kafka's own consumer lag).",
    ["topic", "partition"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "tapwire_dead_letters_total",
    "Records sent to the dead-letter topic, by reason.",
    ["reason"],
    registry=REGISTRY,
)
SEGMENT_RETRIES = Counter(
    "tapwire_segment_retried_requests_total",
    "Segment-spec requests the SDK marked as retries (X-Retry-Count header).",
    registry=REGISTRY,
)
SUPPRESSED_RECORDS = Counter(
    "tapwire_suppressed_records_total",
    "Records dropped because their subject (or account) was erased, by where they were dropped.",
    ["stage"],
    registry=REGISTRY,
)


def render() -> bytes:
    """The registry in Prometheus text exposition format."""
    return generate_latest(REGISTRY)

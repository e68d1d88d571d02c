"""The messaging service's Prometheus metrics (served on every process's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

from tapwire_core.metrics import REGISTRY

DELIVERIES = Counter(
    "tapwire_messaging_deliveries_total",
    "Delivery attempts handed to providers, by channel and outcome (sent, failed).",
    ["channel", "outcome"],
    registry=REGISTRY,
)

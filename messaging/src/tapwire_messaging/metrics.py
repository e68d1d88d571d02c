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

EMAIL_FEEDBACK = Counter(
    "tapwire_messaging_email_feedback_total",
    "Bounce, complaint and delivery reports taken in, by source (smtp, dsn, arf, ses, sendgrid, postmark, "
    "mailgun), kind and outcome (applied, repeated, unmatched: naming no message of this deployment).",
    ["source", "kind", "outcome"],
    registry=REGISTRY,
)
EMAIL_FEEDBACK_REFUSED = Counter(
    "tapwire_messaging_email_feedback_refused_total",
    "Reports refused before reading them: bad signature or credentials, stale timestamp, unknown topic.",
    ["source", "reason"],
    registry=REGISTRY,
)

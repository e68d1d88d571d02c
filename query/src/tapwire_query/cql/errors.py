"""The query compiler's client-fault error: a query that cannot be compiled (HTTP 422)."""

from __future__ import annotations


class CqlError(ValueError):
    """The query is invalid; ``str(error)`` names the offending field (``event_properties.0.operator: ...``)."""

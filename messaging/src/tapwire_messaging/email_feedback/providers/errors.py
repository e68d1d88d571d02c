"""Why a webhook post was refused before anything in it was believed."""

from __future__ import annotations


class WebhookRefused(Exception):
    """The post is not from the provider (bad signature, credentials, topic) or is stale. ``status`` is the
    HTTP status to answer (401 or 403; 400 for a malformed signed envelope), ``reason`` a short metric label."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class WebhookUnavailable(Exception):
    """Verification needs something that is down (the provider's signing certificate could not be fetched);
    the provider should retry."""

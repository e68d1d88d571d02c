"""Outbound HTTP to customer-supplied URLs (webhooks, privacy notices): public addresses only.

Use :func:`guarded_client` for every request to a URL a customer chose, with the policy from
:func:`policy_from_settings`; :func:`check_url` gives an early, clear error when such a URL is saved.
"""

from tapwire_core.egress.addresses import refusal
from tapwire_core.egress.client import (
    EgressRefused,
    GuardedNetworkBackend,
    Resolver,
    ResponseTooLarge,
    guarded_client,
    system_resolver,
)
from tapwire_core.egress.policy import EgressPolicy
from tapwire_core.egress.urls import UnsafeUrl, check_url
from tapwire_core.settings import Settings


def policy_from_settings(settings: Settings) -> EgressPolicy:
    """The operator's allow-list (``TAPWIRE_EGRESS_ALLOW``); raises ValueError naming a malformed entry."""
    return EgressPolicy.parse(settings.egress_allow)


__all__ = [
    "EgressPolicy",
    "EgressRefused",
    "GuardedNetworkBackend",
    "Resolver",
    "ResponseTooLarge",
    "UnsafeUrl",
    "check_url",
    "guarded_client",
    "policy_from_settings",
    "refusal",
    "system_resolver",
]

"""Checking a customer-supplied URL when it is saved, so an obvious mistake gets a clear 422 at once.

This is a courtesy, not the guard: a name is not resolved here (its answer may differ when it is used), so a
URL passing this check can still be refused when connecting. The guard is :func:`tapwire_core.egress.guarded_client`.
"""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

from tapwire_core.egress.policy import EgressPolicy

MAX_URL_LENGTH = 2048


class UnsafeUrl(ValueError):
    """The URL is not an http(s) URL to a host customers may reach."""


def check_url(url: object, policy: EgressPolicy | None = None) -> str:
    """``url`` when it is an http(s) URL whose host is not a literal internal address or a ``localhost``
    name (RFC 6761) the operator did not allow; raises :class:`UnsafeUrl` naming the problem otherwise."""
    policy = policy or EgressPolicy()
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise UnsafeUrl("must be an http:// or https:// URL")
    if len(url) > MAX_URL_LENGTH or any(c in url for c in "\r\n\t ") or not url.isascii():
        raise UnsafeUrl(f"must be an ASCII URL of at most {MAX_URL_LENGTH} characters without spaces")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as exc:
        raise UnsafeUrl(f"is not a valid URL: {exc}") from exc
    host = host.rstrip(".") if host else host
    if not host:
        raise UnsafeUrl("names no host")
    try:
        literal = ip_address(host.split("%")[0])
    except ValueError:
        if (host == "localhost" or host.endswith(".localhost")) and not policy.allows_host(host):
            raise UnsafeUrl(f"leads to {host}, which is this machine") from None
        return url
    reason = policy.refusal(host, literal)
    if reason is not None:
        raise UnsafeUrl(f"leads to an internal address: {reason}")
    return url

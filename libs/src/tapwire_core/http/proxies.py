"""The client's real address behind trusted reverse proxies (``TAPWIRE_TRUSTED_PROXIES``).

Behind an ingress every connection comes from the ingress, so per-address limits would share one bucket and
Segment's ``context.ip`` would record the ingress. A proxy says who connected to it in ``Forwarded`` (RFC 7239) or
``X-Forwarded-For``; but anyone can send those headers, so they are believed only from a trusted peer, and only as
far back as the chain stays trusted: reading right to left, the first address that is not a trusted proxy is the
client. Without trusted proxies (the default) the headers are ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(value: str | None) -> tuple[Network, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128). Raises ValueError naming a malformed entry."""
    networks = []
    for raw in (value or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"TAPWIRE_TRUSTED_PROXIES: {entry!r} is not a CIDR or an IP address") from exc
    return tuple(networks)


class TrustedProxies:
    def __init__(self, networks: Sequence[Network]) -> None:
        self.networks = tuple(networks)

    def trusts(self, address: Address | None) -> bool:
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def client(self, peer: str, hops: Sequence[str]) -> str:
        """The client's address, given the connecting ``peer`` and the forwarded ``hops`` (client first)."""
        client = peer
        if not self.trusts(_address(peer)):
            return client
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # "unknown" or an obfuscated name: nothing further back can be believed
            client = str(address)
            if not self.trusts(address):
                break
        return client


class TrustedProxyMiddleware:
    """Rewrites ``scope["client"]`` (and ``scheme``, from the nearest proxy's ``proto``) when the peer is trusted."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            see_through(self.proxies, scope)
        await self.app(scope, receive, send)


def see_through(proxies: TrustedProxies, scope: Scope) -> None:
    """What ``TrustedProxyMiddleware`` does to an HTTP or WebSocket scope, for paths served ahead of it."""
    if proxies.networks and scope.get("client"):
        peer, port = scope["client"]
        if proxies.trusts(_address(peer)):
            hops, protos = _forwarded(scope["headers"])
            scope["client"] = (proxies.client(peer, hops), port)
            if protos and protos[-1] in ("http", "https"):
                scope["scheme"] = protos[-1] if scope["type"] == "http" else _ws(protos[-1])


def _forwarded(headers: Iterable[tuple[bytes, bytes]]) -> tuple[list[str], list[str]]:
    """The hops and protocols a request carries: ``Forwarded`` when present, else ``X-Forwarded-For``/``-Proto``.
    Repeated headers are one list, in order."""
    forwarded: list[str] = []
    xff: list[str] = []
    xfp: list[str] = []
    for name, value in headers:
        if name == b"forwarded":
            forwarded.append(value.decode("latin-1"))
        elif name == b"x-forwarded-for":
            xff.append(value.decode("latin-1"))
        elif name == b"x-forwarded-proto":
            xfp.append(value.decode("latin-1"))
    if forwarded:
        hops: list[str] = []
        protos: list[str] = []
        for element in ",".join(forwarded).split(","):
            pairs = dict(_pair(part) for part in element.split(";") if "=" in part)
            hops.append(pairs.get("for", "unknown"))
            if "proto" in pairs:
                protos.append(pairs["proto"].lower())
        return hops, protos
    return (
        [hop.strip() for hop in ",".join(xff).split(",") if hop.strip()],
        [p.strip().lower() for p in ",".join(xfp).split(",") if p.strip()],
    )


def _pair(part: str) -> tuple[str, str]:
    key, _, value = part.strip().partition("=")
    return key.strip().lower(), value.strip().strip('"')


def _address(text: str) -> Address | None:
    """An address from a hop: ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]:80``; None otherwise."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ws(scheme: str) -> str:
    return "wss" if scheme == "https" else "ws"

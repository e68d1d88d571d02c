"""The operator's allow-list for customer-supplied URLs (``TAPWIRE_EGRESS_ALLOW``) and the decision per address.

Customers may only reach public addresses (:mod:`tapwire_core.egress.addresses`). An operator who runs
receivers inside the network (an internal webhook relay, a test receiver on 127.0.0.1) names them here:
CIDRs (``10.20.0.0/16``, ``127.0.0.1/32``, ``fd00::/8``), single addresses, host names (``hooks.internal``)
and domain suffixes (``.svc.cluster.local``: any name below it). Comma- or space-separated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from tapwire_core.egress.addresses import IPAddress, embedded_ipv4, refusal

SETTING = "TAPWIRE_EGRESS_ALLOW"
_HOST = re.compile(
    r"^\.?(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """What customer-supplied URLs may reach beyond the public internet. The default allows nothing more."""

    networks: tuple[IPv4Network | IPv6Network, ...] = ()
    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> EgressPolicy:
        """The allow-list from its setting. Raises ValueError naming the first entry that is neither a CIDR,
        an address nor a host name."""
        networks: list[IPv4Network | IPv6Network] = []
        hosts: set[str] = set()
        suffixes: list[str] = []
        for entry in (text or "").replace(",", " ").split():
            try:
                networks.append(ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not _HOST.match(name):
                raise ValueError(f"{SETTING}: {entry!r} is neither a CIDR, an IP address nor a host name")
            if name.startswith("."):
                suffixes.append(name)
            else:
                hosts.add(name)
        return cls(tuple(networks), frozenset(hosts), tuple(suffixes))

    def allows_host(self, host: str) -> bool:
        """Whether the operator vouches for every address of ``host``."""
        name = host.lower().rstrip(".")
        return name in self.hosts or any(name.endswith(suffix) for suffix in self.suffixes)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """None when a connection to ``address`` (``host`` resolved to it) is allowed; else why not, for logs
        and delivery records (the address and its kind, never more)."""
        if self.allows_host(host) or self._allows_address(address):
            return None
        reason = refusal(address)
        return None if reason is None else f"{address} is {reason}"

    def _allows_address(self, address: IPAddress) -> bool:
        candidates: list[IPv4Address | IPv6Address] = [address]
        if isinstance(address, IPv6Address) and (inner := embedded_ipv4(address)) is not None:
            candidates.append(inner)
        return any(
            a in network for a in candidates for network in self.networks if a.version == network.version
        )

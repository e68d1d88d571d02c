"""Mailboxes as SMTP needs them: the bare address for the envelope, the display form for the headers.

``Ann <ann@example.com>`` travels as ``MAIL FROM:<ann@example.com>`` / ``RCPT TO:<ann@example.com>`` and as the
header value ``Ann <ann@example.com>``. A non-ASCII display name is RFC 2047 encoded on its own; the address
stays readable so the header keeps its domain.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

_FORBIDDEN = frozenset("\r\n")


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One address and its optional display name."""

    address: str
    display_name: str = ""

    @classmethod
    def parse(cls, value: str) -> Mailbox:
        """``ann@example.com`` or ``Ann <ann@example.com>`` (``"Ann, B." <ann@example.com>`` too).

        Raises ValueError for CR or LF, more or fewer than one address, or an address without a local part and
        a domain.
        """
        if _FORBIDDEN.intersection(value):
            raise ValueError(f"{value!r} contains CR or LF")
        if "<" not in value and "," not in value and '"' not in value:
            address, name = value.strip(), ""
        else:
            found = email.utils.getaddresses([value])
            if len(found) != 1:
                raise ValueError(f"{value!r} is not one mailbox")
            name, address = found[0]
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain or any(c in address for c in "<> \t"):
            raise ValueError(f"{value!r} names no address of the form local@domain")
        return cls(address=address, display_name=name.strip())

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def header(self) -> str:
        """The header form: the address alone, or the (quoted or RFC 2047 encoded) name and the address."""
        if not self.display_name:
            return self.address
        return email.utils.formataddr((self.display_name, self.address), charset="utf-8")

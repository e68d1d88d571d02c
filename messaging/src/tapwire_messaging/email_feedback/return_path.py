"""Return-path tokens: the outbox row a message came from, carried by the message itself.

A token is ``tw<row id in hex>-<MAC>`` (lower case, so MTAs that fold local parts keep it). It rides in
the VERP-style envelope sender (``bounces+tw1f4-a1b2c3d4e5f6@bounce.example``: a bounce to it names the
message), in the Message-ID (which DSNs, ARF reports and the providers' webhooks all quote) and, for providers
that carry metadata, in their metadata header. The MAC (48 bits of a keyed BLAKE2b under the messaging secret)
keeps anyone who can send mail to the bounce address from reporting bounces for messages they never received.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Final

_TOKEN: Final = re.compile(r"tw([0-9a-f]{1,15})-([0-9a-f]{12})", re.IGNORECASE)
_MAC_BYTES: Final = 6


class ReturnPathTokens:
    """Makes and checks tokens under one secret (every messaging process of a deployment shares it)."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.blake2b(secret, digest_size=32, person=b"tw-return-path").digest()

    def token(self, row_id: int) -> str:
        return f"tw{row_id:x}-{self._mac(row_id)}"

    def verp_address(self, bounce_address: str, row_id: int) -> str:
        """``bounces@bounce.example`` → ``bounces+<token>@bounce.example``."""
        local, _, domain = bounce_address.rpartition("@")
        return f"{local}+{self.token(row_id)}@{domain}"

    def row_id(self, text: str) -> int | None:
        """The row of the first valid token in ``text`` (an address, a Message-ID, a header); None if none."""
        for found in _TOKEN.finditer(text):
            row_id = int(found.group(1), 16)
            if hmac.compare_digest(found.group(2).lower(), self._mac(row_id)):
                return row_id
        return None

    def first_row_id(self, texts: Iterable[str | None]) -> int | None:
        for text in texts:
            if text:
                row_id = self.row_id(text)
                if row_id is not None:
                    return row_id
        return None

    def _mac(self, row_id: int) -> str:
        return hashlib.blake2b(str(row_id).encode(), key=self._key, digest_size=_MAC_BYTES).hexdigest()

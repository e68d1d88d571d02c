"""Opaque, signed, expiring cursors bound to their account.

A cursor carries everything needed to fetch the next page — the query, the page size, the snapshot time and
the last sort key — so any query instance sharing the secret can serve it and no server state is kept. It is
``base64url(zlib(json) + HMAC-SHA256(secret, that)[:16])``: URL-safe (``[A-Za-z0-9_-]``, as CleverTap's
clients insert it into URLs unencoded), tamper-evident, and checked for expiry and account on every use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

log = logging.getLogger(__name__)

CursorKind = Literal["events", "profiles", "members"]
_MAC_BYTES = 16


class CursorError(Exception):
    """The cursor cannot be used. ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class CursorState:
    """Where a paged read stands. ``after`` is the last sort key served (None before the first page);
    ``scope`` names what the read belongs to beyond the account (a saved segment's id)."""

    kind: CursorKind
    account_id: str
    query: dict[str, Any]
    batch_size: int
    snapshot_ms: int
    after: list[Any] | None
    expires_at: int
    flags: dict[str, bool]
    scope: str = ""


class CursorCodec:
    """Signs and verifies cursors with one secret; ``clock`` returns epoch seconds (injectable for tests)."""

    def __init__(self, secret: str | None, *, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        if secret is None:
            log.warning("no query cursor secret configured; cursors are valid only in this process")
            secret = secrets.token_hex(32)
        self._key = hashlib.sha256(b"tapwire-cursor\x00" + secret.encode()).digest()
        self.ttl_s = ttl_s
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def expiry(self) -> int:
        return int(self._clock()) + self.ttl_s

    def encode(self, state: CursorState) -> str:
        body = zlib.compress(
            orjson.dumps(
                {
                    "k": state.kind,
                    "a": state.account_id,
                    "q": state.query,
                    "b": state.batch_size,
                    "s": state.snapshot_ms,
                    "p": state.after,
                    "e": state.expires_at,
                    "f": state.flags,
                    "c": state.scope,
                }
            )
        )
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()

    def decode(self, token: str, *, account_id: str, kind: CursorKind) -> CursorState:
        """The state in ``token``; raises ``CursorError`` when it is malformed, forged, expired, issued to
        another account or for another endpoint."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise CursorError(400, "cursor is not valid") from exc
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        expected = hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise CursorError(400, "cursor is not valid")
        try:
            data = orjson.loads(zlib.decompress(body))
            state = CursorState(
                kind=data["k"],
                account_id=data["a"],
                query=data["q"],
                batch_size=int(data["b"]),
                snapshot_ms=int(data["s"]),
                after=data["p"],
                expires_at=int(data["e"]),
                flags=data["f"],
                scope=str(data.get("c", "")),
            )
        except (zlib.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CursorError(400, "cursor is not valid") from exc
        if state.account_id != account_id:
            raise CursorError(403, "cursor was issued to another account")
        if state.kind != kind:
            raise CursorError(400, f"cursor belongs to another endpoint ({state.kind})")
        if state.expires_at < self._clock():
            raise CursorError(400, "cursor has expired; start the query again")
        return state

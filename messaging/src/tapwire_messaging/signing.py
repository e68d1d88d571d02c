"""Signed link tokens for unsubscribe, open-tracking and click-redirect URLs.

A token is ``base64url(json payload) "." base64url(HMAC-SHA256)``; only the service holding the secret can mint
one, so a click redirect cannot be turned into an open redirect and nobody can unsubscribe someone else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


class BadToken(ValueError):
    """A token that was not minted here or was altered."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """Whom a link belongs to: the outbox key, and for clicks the destination."""

    account_id: str
    campaign_id: int
    variant: str
    user_key: str
    channel: str
    url: str | None = None


class LinkSigner:
    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the messaging secret must be at least 16 characters")
        key = hashlib.sha256(b"tapwire-links:" + secret.encode()).digest()
        # Keyed once; each MAC starts from a copy (keying per call costs far more inside a busy process).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def token(self, purpose: str, target: LinkTarget) -> str:
        payload: list[Any] = [
            target.account_id,
            target.campaign_id,
            target.variant,
            target.user_key,
            target.channel,
        ]
        if target.url is not None:
            payload.append(target.url)
        body = _b64(orjson.dumps(payload))
        return f"{body}.{self._mac(purpose, body)}"

    def verify(self, purpose: str, token: str) -> LinkTarget:
        """The target a valid token names. Raises BadToken otherwise."""
        body, _, mac = token.partition(".")
        if not body or not hmac.compare_digest(self._mac(purpose, body), mac):
            raise BadToken("link signature does not match")
        try:
            payload = orjson.loads(_unb64(body))
            account, campaign, variant, user, channel = payload[:5]
            url = payload[5] if len(payload) > 5 else None
            return LinkTarget(str(account), int(campaign), str(variant), str(user), str(channel), url)
        except (ValueError, TypeError) as exc:
            raise BadToken("malformed link") from exc

    def _mac(self, purpose: str, body: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"{purpose}:{body}".encode())
        return _b64(mac.digest()[:18])


def load_or_create_secret(configured: str | None, data_dir: Path) -> str:
    """``TAPWIRE_MESSAGING_SECRET`` when set; else a random secret kept (mode 0600) under the data directory,
    so links stay valid across restarts of an embedded suite. Distributed deployments must set it."""
    if configured:
        return configured
    path = data_dir / "messaging-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret

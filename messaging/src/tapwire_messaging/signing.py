"""Link tokens for unsubscribe, open-tracking and click-redirect URLs: opaque, authenticated, expiring.

A token is ``base64url(version ‖ AES-SIV(payload))`` with the link's purpose as associated data. AES-SIV
(RFC 5297) is deterministic authenticated encryption: only the service holding the secret can mint or read a
token, nobody can alter one (so a click redirect cannot become an open redirect, and nobody can unsubscribe
someone else), and the payload (account, campaign, variant, user key, channel, expiry, destination) shows
nothing to whoever sees the URL, a mail scanner or a proxy log included. Deterministic means no nonce to
manage: the same payload always gives the same token, which reveals only that two URLs are the same link.

Tokens minted before encryption (``base64url(json).base64url(HMAC)``, the user key readable) are still
verified, so links in mail already sent keep working; they carry no expiry, and :class:`VerifiedLink` says
they are legacy so the caller can apply one (:class:`tapwire_messaging.links.Links`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_VERSION = 1
NEVER = 0
"""``expires_s`` of a link that does not expire (unsubscribe links)."""


class BadToken(ValueError):
    """A token that was not minted here or was altered."""


class ExpiredLink(BadToken):
    """A genuine token past its expiry."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadToken("malformed link") from exc


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """Whom a link belongs to: the outbox key, and for clicks the destination."""

    account_id: str
    campaign_id: int
    variant: str
    user_key: str
    channel: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class VerifiedLink:
    """A token's target; ``expires_s`` (Unix seconds) is :data:`NEVER` for links that do not expire and for
    ``legacy`` tokens, minted before tokens were encrypted, which carry no expiry of their own."""

    target: LinkTarget
    expires_s: int
    legacy: bool = False


class LinkSigner:
    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the messaging secret must be at least 16 characters")
        key = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"tapwire-links-v1").derive(
            secret.encode()
        )
        self._cipher = AESSIV(key)
        legacy_key = hashlib.sha256(b"tapwire-links:" + secret.encode()).digest()
        # Keyed once; each MAC starts from a copy (keying per call costs far more inside a busy process).
        self._legacy = hmac.new(legacy_key, digestmod=hashlib.sha256)

    def token(self, purpose: str, target: LinkTarget, *, expires_s: int) -> str:
        """A token for ``target``, valid until ``expires_s`` (Unix seconds; :data:`NEVER` for no expiry)."""
        payload: list[Any] = [
            target.account_id,
            target.campaign_id,
            target.variant,
            target.user_key,
            target.channel,
            expires_s,
        ]
        if target.url is not None:
            payload.append(target.url)
        sealed = self._cipher.encrypt(orjson.dumps(payload), [purpose.encode()])
        return _b64(bytes((TOKEN_VERSION,)) + sealed)

    def verify(self, purpose: str, token: str, *, now_s: float) -> VerifiedLink:
        """The link a genuine token for ``purpose`` names. Raises :class:`ExpiredLink` past its expiry and
        :class:`BadToken` for anything not minted here for that purpose."""
        if "." in token:
            return VerifiedLink(self._verify_legacy(purpose, token), NEVER, legacy=True)
        raw = _unb64(token)
        if not raw or raw[0] != TOKEN_VERSION:
            raise BadToken("unknown link version")
        try:
            payload = orjson.loads(self._cipher.decrypt(raw[1:], [purpose.encode()]))
            account, campaign, variant, user, channel, expires = payload[:6]
            url = payload[6] if len(payload) > 6 else None
            link = VerifiedLink(
                LinkTarget(str(account), int(campaign), str(variant), str(user), str(channel), url),
                int(expires),
            )
        except (InvalidTag, ValueError, TypeError) as exc:
            raise BadToken("link does not verify") from exc
        if link.expires_s != NEVER and now_s > link.expires_s:
            raise ExpiredLink("link expired")
        return link

    def _verify_legacy(self, purpose: str, token: str) -> LinkTarget:
        body, _, mac = token.partition(".")
        if not body or not hmac.compare_digest(self._legacy_mac(purpose, body), mac):
            raise BadToken("link signature does not match")
        try:
            payload = orjson.loads(_unb64(body))
            account, campaign, variant, user, channel = payload[:5]
            url = payload[5] if len(payload) > 5 else None
            return LinkTarget(str(account), int(campaign), str(variant), str(user), str(channel), url)
        except (ValueError, TypeError) as exc:
            raise BadToken("malformed link") from exc

    def _legacy_mac(self, purpose: str, body: str) -> str:
        mac = self._legacy.copy()
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

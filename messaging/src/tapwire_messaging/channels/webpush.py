"""Web push (RFC 8030) to browser subscriptions, the payload encrypted for the browser (RFC 8291) and the
request signed with the deployment's VAPID key (RFC 8292).

A subscription is its push service endpoint (an HTTPS URL the browser got from its vendor's push service) and
two keys: ``p256dh`` (the browser's P-256 public key) and ``auth`` (a 16-byte secret). The payload is encrypted
with ``aes128gcm`` by ``http_ece`` (Mozilla's implementation of RFC 8188, which derives RFC 8291's keys from an
ephemeral key per message); the VAPID token is an ES256 JWT (PyJWT) for the endpoint's origin, reused for
twelve hours. The endpoint came from a browser, so requests go through the guarded egress client: a
subscription naming an internal address is refused, not sent.

Push service answers: 201 sent; 404 or 410 the subscription is gone (``unregistered``: never used again); 429
and 5xx retried (a ``Retry-After`` pauses that push service); 400, 401, 403 (a VAPID key other than the one the
browser subscribed with) and 413 rejected. ``Topic`` carries the message's idempotency key, so a push service
holding an undelivered copy replaces it with a retried one instead of delivering both.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import http_ece  # type: ignore[import-untyped]  # no type hints; the two calls used are wrapped here
import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tapwire_core.egress import EgressPolicy, Resolver, guarded_client, system_resolver
from tapwire_messaging.channels.base import ChannelAdapter, OutboundMessage, SendResult
from tapwire_messaging.channels.http_retry import ProviderPause, RetryPolicy, post_with_retries

# Push services accept 4096 bytes of encrypted payload; the aes128gcm header (86 bytes) and one record's
# padding delimiter and tag (17 bytes) leave this much for the JSON.
MAX_PAYLOAD_BYTES = 4096 - 86 - 17
TOKEN_LIFETIME_S = 12 * 3600
_RENEW_BEFORE_S = 3600
_MAX_ORIGINS = 1000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VapidKey:
    """The deployment's VAPID key pair: signs the tokens; its public half is what browsers subscribe with."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, subject: str) -> None:
        """``subject``: a ``mailto:`` or ``https:`` contact the push services may use (RFC 8292 §2.1)."""
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("a VAPID key is a P-256 key")
        if not subject.startswith(("mailto:", "https://")):
            raise ValueError(
                "TAPWIRE_VAPID_SUBJECT must be a mailto: or https: URL, e.g. mailto:ops@example.com"
            )
        self._key = key
        self.subject = subject
        self.public_key = b64url(
            key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    @classmethod
    def from_pem(cls, pem: bytes, *, subject: str) -> VapidKey:
        """Raises ValueError for anything but a P-256 private key in PEM."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the VAPID key is not a PEM private key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the VAPID key must be a P-256 (ES256) key")
        return cls(key, subject=subject)

    @classmethod
    def from_file(cls, path: Path, *, subject: str) -> VapidKey:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"TAPWIRE_VAPID_KEY_FILE: cannot read {path}: {exc.strerror}") from exc
        return cls.from_pem(pem, subject=subject)

    @staticmethod
    def generate_pem() -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def token(self, audience: str, *, now: float) -> str:
        return jwt.encode(
            {"aud": audience, "exp": int(now) + TOKEN_LIFETIME_S, "sub": self.subject},
            self._key,
            algorithm="ES256",
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    endpoint: str
    p256dh: bytes
    auth: bytes

    @classmethod
    def parse(cls, endpoint: str, keys: Mapping[str, Any]) -> Subscription:
        """Raises ValueError naming what is wrong: not an HTTPS endpoint, keys of the wrong form."""
        parts = urlsplit(endpoint)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
            raise ValueError("the endpoint is not an https URL")
        try:
            p256dh = from_b64url(str(keys.get("p256dh", "")))
            auth = from_b64url(str(keys.get("auth", "")))
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
        except (ValueError, TypeError) as exc:
            raise ValueError("keys.p256dh is not a P-256 public key") from exc
        if len(auth) != 16:
            raise ValueError("keys.auth is not 16 bytes")
        return cls(endpoint, p256dh, auth)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{parts.netloc}"


def encrypt(
    payload: bytes,
    subscription: Subscription,
    *,
    sender: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """The RFC 8291 ``aes128gcm`` body for ``subscription`` (a fresh sender key and salt unless given)."""
    body: bytes = http_ece.encrypt(
        payload,
        salt=salt,
        private_key=sender or ec.generate_private_key(ec.SECP256R1()),
        dh=subscription.p256dh,
        auth_secret=subscription.auth,
        version="aes128gcm",
    )
    return body


class WebPushAdapter(ChannelAdapter):
    """``message.to`` is the endpoint, ``message.data["keys"]`` the subscription's keys and
    ``message.data["payload"]`` the JSON object the site's service worker receives."""

    name = "webpush"

    def __init__(
        self,
        vapid: VapidKey,
        *,
        egress: EgressPolicy,
        ttl_s: int = 4 * 7 * 86400,
        policy: RetryPolicy | None = None,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.vapid = vapid
        self.ttl_s = ttl_s
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._client: httpx.AsyncClient = guarded_client(
            egress, resolver=resolver, ssl_context=ssl_context, max_response_bytes=64 * 1024
        )
        self._tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._pauses: OrderedDict[str, ProviderPause] = OrderedDict()

    def authorization(self, origin: str) -> str:
        """``vapid t=<JWT for origin>, k=<public key>`` (RFC 8292 §3), one token per origin for 12 hours."""
        now = self._clock()
        cached = self._tokens.get(origin)
        if cached is None or cached[1] - now < _RENEW_BEFORE_S:
            cached = (self.vapid.token(origin, now=now), now + TOKEN_LIFETIME_S)
            self._tokens[origin] = cached
        self._tokens.move_to_end(origin)
        while len(self._tokens) > _MAX_ORIGINS:
            self._tokens.popitem(last=False)
        return f"vapid t={cached[0]}, k={self.vapid.public_key}"

    def _pause(self, origin: str) -> ProviderPause:
        pause = self._pauses.get(origin)
        if pause is None:
            pause = self._pauses[origin] = ProviderPause()
            while len(self._pauses) > _MAX_ORIGINS:
                self._pauses.popitem(last=False)
        return pause

    async def send(self, message: OutboundMessage) -> SendResult:
        keys = message.data.get("keys")
        try:
            subscription = Subscription.parse(message.to, keys if isinstance(keys, dict) else {})
        except ValueError as exc:
            return SendResult("unregistered", f"unusable subscription: {exc}")
        payload = orjson.dumps(message.data.get("payload") or {"title": message.title, "body": message.body})
        if len(payload) > MAX_PAYLOAD_BYTES:
            return SendResult(
                "rejected", f"the payload is {len(payload)} bytes; web push carries {MAX_PAYLOAD_BYTES}"
            )
        body = encrypt(payload, subscription)
        origin = subscription.origin
        headers = {
            "TTL": str(self.ttl_s),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Urgency": "normal",
            "Topic": message.idempotency_key[:32],
        }
        answer = await post_with_retries(
            self._client,
            subscription.endpoint,
            content=body,
            headers=lambda: {**headers, "Authorization": self.authorization(origin)},
            policy=self.policy,
            pause=self._pause(origin),
        )
        if answer.refused:
            return SendResult("unregistered", f"the endpoint is not reachable from here: {answer.error}")
        response = answer.response
        if response is None:
            return SendResult("failed", answer.error or "no answer", retry_after_s=answer.retry_after_s)
        status = response.status_code
        if status in (200, 201, 202):
            return SendResult(
                "sent", f"push service answered {status}", provider_id=response.headers.get("location")
            )
        if status in (404, 410):
            return SendResult("unregistered", f"push service answered {status}: the subscription is gone")
        if status == 429 or status >= 500:
            return SendResult("failed", f"push service answered {status}", retry_after_s=answer.retry_after_s)
        return SendResult("rejected", f"push service answered {status}: {response.text[:200]}")

    async def close(self) -> None:
        await self._client.aclose()

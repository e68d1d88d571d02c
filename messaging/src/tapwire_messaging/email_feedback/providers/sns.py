"""Amazon SNS message verification: the signing certificate, fetched from SNS itself, checks every message.

SNS signs the canonical string of a message's fields (RFC-less, documented by AWS: ``Key\\nValue\\n`` for the
fields of its type, in a fixed order) with the key of the certificate at ``SigningCertURL``, SHA1withRSA for
``SignatureVersion`` 1 and SHA256withRSA for 2. The URL is trusted only when it is HTTPS on an SNS host
(``sns.<region>.amazonaws.com``, or ``.com.cn``) and names a ``.pem`` file; it is fetched through the guarded
egress client (public addresses only, bounded response, deadline) and the certificate is cached by URL.

A verified message is believed only for topics the operator listed (``TAPWIRE_SES_TOPIC_ARNS``): anyone can
create an SNS topic, subscribe this endpoint and send it messages SNS signs correctly.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tapwire_messaging.email_feedback.providers.errors import WebhookRefused, WebhookUnavailable

SNS_HOST: Final = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_SIGNED_FIELDS: Final = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_HASHES: Final = {"1": hashes.SHA1, "2": hashes.SHA256}
MAX_CERT_BYTES: Final = 64 * 1024
# SNS retries a delivery for up to an hour by default and longer under a custom policy; a message signed
# longer ago than this is refused (replays inside it are harmless: every report applies once).
MAX_AGE_S: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class SnsUrlPolicy:
    """Which URLs may serve SNS certificates and subscription confirmations. ``ports``: explicit ports
    allowed besides the default (none in production; a test's local server listens on its own)."""

    ports: frozenset[int] = frozenset()

    def check(self, url: str, *, what: str) -> str:
        """``url`` when it is an SNS URL; WebhookRefused(400) otherwise."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (
            parts.scheme != "https"
            or not parts.hostname
            or not SNS_HOST.fullmatch(parts.hostname)
            or parts.username is not None
            or (port is not None and port not in self.ports)
            or (what == "certificate" and (not parts.path.endswith(".pem") or parts.query))
        ):
            raise WebhookRefused(400, "sns-url", f"{what} URL is not an Amazon SNS URL")
        return url


Fetch = Callable[[str], Awaitable[bytes]]
"""``url -> body``: a GET through the guarded egress client; raises httpx errors."""


def guarded_fetch(client: httpx.AsyncClient) -> Fetch:
    async def fetch(url: str) -> bytes:
        response = await client.get(url)
        body = await response.aread()
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"{url} answered {response.status_code}", request=response.request, response=response
            )
        return body

    return fetch


class CertificateCache:
    """Signing certificates by URL: fetched once, kept until a day passes or they expire; at most
    ``max_entries`` (SNS rotates them rarely). Concurrent misses for one URL fetch once."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_s: float = 86_400.0,
        max_entries: int = 16,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[str, tuple[x509.Certificate, float]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0

    async def get(self, url: str) -> x509.Certificate:
        cached = self._entries.get(url)
        if cached is not None and cached[1] > self._monotonic():
            self._entries.move_to_end(url)
            return cached[0]
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            cached = self._entries.get(url)
            if cached is not None and cached[1] > self._monotonic():
                return cached[0]
            certificate = await self._load(url)
            self._entries[url] = (certificate, self._monotonic() + self._ttl_s)
            self._entries.move_to_end(url)
            while len(self._entries) > self._max_entries:
                evicted, _ = self._entries.popitem(last=False)
                self._locks.pop(evicted, None)
        return certificate

    async def _load(self, url: str) -> x509.Certificate:
        self.fetches += 1
        try:
            body = await self._fetch(url)
        except httpx.HTTPError as exc:
            raise WebhookUnavailable(f"the SNS signing certificate could not be fetched: {exc}") from exc
        if len(body) > MAX_CERT_BYTES:
            raise WebhookUnavailable("the SNS signing certificate is implausibly large")
        try:
            certificate = x509.load_pem_x509_certificate(body)
        except ValueError as exc:
            raise WebhookRefused(400, "sns-certificate", "the SNS signing certificate is not a PEM") from exc
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise WebhookRefused(400, "sns-certificate", "the SNS signing certificate holds no RSA key")
        return certificate


class SnsVerifier:
    """Checks an SNS message's envelope: type, topic, age, certificate URL and signature."""

    def __init__(
        self,
        *,
        topics: frozenset[str],
        certificates: CertificateCache,
        urls: SnsUrlPolicy = SnsUrlPolicy(),
        now: Callable[[], float] = time.time,
    ) -> None:
        self.topics = topics
        self.urls = urls
        self._certificates = certificates
        self._now = now

    async def verify(self, message: Mapping[str, Any]) -> None:
        """Return when ``message`` is a genuine SNS message of a listed topic; raise WebhookRefused (or
        WebhookUnavailable when the certificate cannot be fetched) otherwise."""
        kind = message.get("Type")
        fields = _SIGNED_FIELDS.get(kind) if isinstance(kind, str) else None
        if fields is None:
            raise WebhookRefused(400, "sns-type", "not an SNS message")
        topic = message.get("TopicArn")
        if topic not in self.topics:
            raise WebhookRefused(403, "sns-topic", "messages of this SNS topic are not accepted")
        self._check_age(message.get("Timestamp"))
        hash_type = _HASHES.get(str(message.get("SignatureVersion")))
        if hash_type is None:
            raise WebhookRefused(400, "sns-signature", "unknown SNS SignatureVersion")
        url = self.urls.check(str(message.get("SigningCertURL", "")), what="certificate")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WebhookRefused(400, "sns-signature", "the SNS signature is not base64") from exc
        canonical = "".join(
            f"{name}\n{message[name]}\n" for name in fields if isinstance(message.get(name), str)
        ).encode()
        certificate = await self._certificates.get(url)
        key = certificate.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        try:
            key.verify(signature, canonical, padding.PKCS1v15(), hash_type())
        except InvalidSignature as exc:
            raise WebhookRefused(401, "sns-signature", "the SNS signature does not match") from exc

    def _check_age(self, timestamp: Any) -> None:
        try:
            moment = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
        except ValueError as exc:
            raise WebhookRefused(400, "sns-timestamp", "the SNS Timestamp is not a time") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        age = self._now() - moment.timestamp()
        if age > MAX_AGE_S or age < -300:
            raise WebhookRefused(401, "sns-timestamp", "the SNS message is too old or from the future")

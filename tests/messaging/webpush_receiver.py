"""A push service on 127.0.0.1 that does what real ones do with a web push request: checks the VAPID
authorization (RFC 8292: the JWT's signature under the key in ``k``, its audience, expiry and subject, and that
``k`` is the key the browser subscribed with) and decrypts the RFC 8291 payload the way a browser does, with
its own implementation of the RFC (not the sender's library), so an incompatible encryption fails here."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tapwire_messaging.channels.webpush import b64url, from_b64url
from tests.infra.tls_receiver import QuietHandler, https_server, resolver_for, trusting

PUSH_HOST = "push.example.test"


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def rfc8291_decrypt(body: bytes, *, ua_private: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """RFC 8291 §3.4 and RFC 8188 §2, step by step, for a one-record message (all web push messages are)."""
    salt, record_size, id_length = body[:16], struct.unpack("!L", body[16:20])[0], body[20]
    as_public = body[21 : 21 + id_length]
    ciphertext = body[21 + id_length :]
    assert id_length == 65 and record_size >= len(ciphertext), "one record, keyed by the sender's public key"
    ua_public = ua_private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    shared = ua_private.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    )
    prk_key = _hmac(auth, shared)
    ikm = _hmac(prk_key, b"WebPush: info\x00" + ua_public + as_public + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
    content = padded.rstrip(b"\x00")
    assert content.endswith(b"\x02"), "the last record ends with the 0x02 delimiter"
    return content[:-1]


@dataclass
class BrowserSubscription:
    """What a browser holds after ``pushManager.subscribe`` and what it gives the site."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str

    @property
    def keys(self) -> dict[str, str]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(public), "auth": b64url(self.auth)}


@dataclass
class Delivered:
    subscription: str
    payload: dict[str, Any]
    headers: dict[str, str]


@dataclass
class PushService:
    ca: trustme.CA
    port: int = 0
    subscriptions: dict[str, BrowserSubscription] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    delivered: list[Delivered] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> str:
        return f"https://{PUSH_HOST}:{self.port}"

    def subscribe(self, application_server_key: str) -> BrowserSubscription:
        """A new subscription for a site whose VAPID public key is ``application_server_key``."""
        name = b64url(os.urandom(12))
        subscription = BrowserSubscription(
            f"{self.origin}/wpush/v2/{name}",
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
            application_server_key,
        )
        with self.lock:
            self.subscriptions[name] = subscription
        return subscription

    def client_context(self) -> ssl.SSLContext:
        return trusting(self.ca)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        name = path.rsplit("/", 1)[-1]
        with self.lock:
            subscription = self.subscriptions.get(name)
            if subscription is None or name in self.gone:
                return 410, "subscription expired"
        scheme, _, params = headers.get("authorization", "").partition(" ")
        fields = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
        if scheme != "vapid" or "t" not in fields or "k" not in fields:
            return 401, "VAPID authorization missing"
        if fields["k"] != subscription.application_server_key:
            return 403, "the VAPID key is not the one the subscription was made with"
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), from_b64url(fields["k"]))
        try:
            claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=self.origin)
        except jwt.PyJWTError as exc:
            return 403, f"VAPID token refused: {exc}"
        if not (time.time() < claims["exp"] <= time.time() + 86400):
            return 403, "VAPID token expiry must be within 24 hours"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https://")):
            return 403, "VAPID subject must be mailto: or https:"
        if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
            return 400, "aes128gcm content and a TTL are required"
        try:
            plaintext = rfc8291_decrypt(body, ua_private=subscription.private_key, auth=subscription.auth)
        except Exception as exc:
            return 400, f"cannot decrypt: {exc!r}"
        with self.lock:
            self.delivered.append(Delivered(name, json.loads(plaintext), headers))
        return 201, ""


@contextmanager
def push_service() -> Iterator[PushService]:
    service = PushService(trustme.CA())

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, reason = service.answer(self.path, headers, body)
            if status != 201:
                with service.lock:
                    service.refused.append((status, reason))
            payload = reason.encode()
            self.send_response(status)
            if status == 201:
                self.send_header("Location", f"{service.origin}/m/{len(service.delivered)}")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    with https_server(Handler, ca=service.ca, host=PUSH_HOST) as port:
        service.port = port
        yield service


push_resolver = resolver_for(PUSH_HOST)

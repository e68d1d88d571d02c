"""Email providers' webhook posts, signed (or forged) the way each provider does, and a local SNS: an HTTPS
server under a test CA that serves the signing certificate and answers subscription confirmations."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from tests.infra.tls_receiver import QuietHandler, https_server, resolver_for, trusting

SNS_HOST = "sns.eu-west-1.amazonaws.com"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
SIGNED = {
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
}


@dataclass
class LocalSns:
    """Serves ``/SimpleNotificationService-test.pem`` and ``/confirm`` over HTTPS on 127.0.0.1:``port``."""

    ca: trustme.CA
    key: rsa.RSAPrivateKey
    certificate_pem: bytes
    port: int = 0
    certificate_fetches: int = 0
    confirmations: list[str] = field(default_factory=list)

    @property
    def certificate_url(self) -> str:
        return f"https://{SNS_HOST}:{self.port}/SimpleNotificationService-test.pem"

    def client_context(self) -> ssl.SSLContext:
        return trusting(self.ca)

    def envelope(
        self,
        message: str,
        *,
        kind: str = "Notification",
        topic: str = TOPIC,
        version: str = "1",
        message_id: str = "m-1",
        timestamp: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        certificate_url: str | None = None,
    ) -> dict[str, Any]:
        """An SNS post, signed as SNS signs (SHA1withRSA for version 1, SHA256withRSA for 2)."""
        body: dict[str, Any] = {
            "Type": kind,
            "MessageId": message_id,
            "TopicArn": topic,
            "Message": message,
            "Timestamp": timestamp or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "SignatureVersion": version,
            "SigningCertURL": certificate_url or self.certificate_url,
        }
        if kind == "SubscriptionConfirmation":
            body["Token"] = "confirm-token"
            body["SubscribeURL"] = f"https://{SNS_HOST}:{self.port}/confirm?Token=confirm-token"
        canonical = "".join(f"{k}\n{body[k]}\n" for k in SIGNED[kind] if k in body).encode()
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or self.key).sign(canonical, padding.PKCS1v15(), digest)
        body["Signature"] = base64.b64encode(signature).decode()
        return body


def _signing_certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@contextmanager
def local_sns() -> Iterator[LocalSns]:
    ca = trustme.CA()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sns = LocalSns(ca, key, _signing_certificate(key))
    lock = threading.Lock()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            with lock:
                if self.path.endswith(".pem"):
                    sns.certificate_fetches += 1
                    body = sns.certificate_pem
                elif self.path.startswith("/confirm"):
                    sns.confirmations.append(self.path)
                    body = b"<ConfirmSubscriptionResponse/>"
                else:
                    body = b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with https_server(Handler, ca=ca, host=SNS_HOST) as port:
        sns.port = port
        yield sns


sns_resolver = resolver_for(SNS_HOST)


@dataclass
class SendgridSigner:
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = self.key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        }


def mailgun_post(key: str, event_data: dict[str, Any], *, token: str, timestamp: int | None = None) -> bytes:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": event_data}
    ).encode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

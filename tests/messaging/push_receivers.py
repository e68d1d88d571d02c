"""Provider-shaped push receivers on 127.0.0.1 that check credentials as the real services do.

- :func:`apns_receiver`: HTTP/2 over TLS only (hypercorn, a certificate from a test CA), ``POST /3/device/<token>``;
  it verifies the ES256 provider token against the team's public key (``kid``, ``iss``, signature, an ``iat``
  under an hour old, else 403 ``ExpiredProviderToken``) and records the HTTP version of every request.
- :func:`fcm_receiver`: an OAuth token endpoint that verifies the service account's RS256 JWT assertion and
  issues access tokens, and ``POST /v1/projects/<project>/messages:send`` that accepts only a bearer token that
  endpoint issued (401 otherwise).

Both can be told to answer 429/503 with ``Retry-After`` first.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypercorn.asyncio import serve
from hypercorn.config import Config

from tests.integration.processes import free_port
from tests.messaging.servers import Answer, Received, http_receiver

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

APNS_KEY_ID = "ABC123DEFG"
APNS_TEAM_ID = "DEF123GHIJ"
FCM_PROJECT = "tapwire-test"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# Google's token endpoint wants this audience in the assertion, whichever URL the key's token_uri names.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


@dataclass
class Throttle:
    """Answers to give before the normal ones: (status, Retry-After or None), in order."""

    answers: list[tuple[int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> tuple[int, str | None] | None:
        with self.lock:
            return self.answers.pop(0) if self.answers else None


def apns_key_pem() -> tuple[bytes, ec.EllipticCurvePublicKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, key.public_key()


@dataclass(frozen=True)
class ApnsRequest(Received):
    """A request as APNs saw it: its HTTP version and the provider token's claims (None when refused)."""

    http_version: str = ""
    claims: dict[str, Any] | None = None


ApnsAnswer = Callable[[Received], tuple[int, dict[str, Any]]]


def _apns_ok(_request: Received) -> tuple[int, dict[str, Any]]:
    return 200, {}


@dataclass
class ApnsReceiver:
    public_key: ec.EllipticCurvePublicKey
    ca: trustme.CA
    port: int = 0
    requests: list[ApnsRequest] = field(default_factory=list)
    throttle: Throttle = field(default_factory=Throttle)
    gone: set[str] = field(default_factory=set)
    answer: ApnsAnswer = _apns_ok

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def _claims(self, headers: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
        """The provider token's claims when it is valid; else None and APNs's reason."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, "MissingProviderToken"
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.public_key, algorithms=["ES256"], options={"verify_iat": False})
        except jwt.PyJWTError:
            return None, "InvalidProviderToken"
        if header.get("kid") != APNS_KEY_ID or claims.get("iss") != APNS_TEAM_ID:
            return None, "InvalidProviderToken"
        if time.time() - float(claims.get("iat", 0)) > 3600:
            return None, "ExpiredProviderToken"
        return claims, ""

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        claims, reason = self._claims(headers)
        request = ApnsRequest(
            scope["method"], scope["path"], headers, body, http_version=scope["http_version"], claims=claims
        )
        self.requests.append(request)
        status, extra_headers, payload = 200, [(b"apns-id", headers.get("apns-id", "").encode())], b""
        throttled = self.throttle.next()
        if scope["http_version"] != "2":
            # Apple serves HTTP/2 only; an HTTP/1.1 client is refused whatever it sends.
            status, payload = 505, b""
        elif claims is None:
            status, payload = 403, json.dumps({"reason": reason}).encode()
        elif throttled is not None:
            status, retry_after = throttled
            reason = "TooManyRequests" if status == 429 else "ServiceUnavailable"
            payload = json.dumps({"reason": reason}).encode()
            if retry_after is not None:
                extra_headers.append((b"retry-after", retry_after.encode()))
        elif scope["path"].rsplit("/", 1)[-1] in self.gone:
            status, payload = 410, json.dumps({"reason": "Unregistered", "timestamp": 1}).encode()
        else:
            status, answer = self.answer(request)
            payload = json.dumps(answer).encode() if answer else b""
        await send({"type": "http.response.start", "status": status, "headers": extra_headers})
        await send({"type": "http.response.body", "body": payload})


@contextmanager
def apns_receiver(
    public_key: ec.EllipticCurvePublicKey, tmp: Path, answer: ApnsAnswer = _apns_ok
) -> Iterator[ApnsReceiver]:
    """An APNs-shaped HTTP/2 TLS server; ``answer`` decides for requests with a valid provider token."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp / "apns-cert.pem", tmp / "apns-key.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_file.write_bytes(cert.private_key_pem.bytes())
    receiver = ApnsReceiver(public_key, ca, port=free_port(), answer=answer)
    config = Config()
    config.bind = [f"127.0.0.1:{receiver.port}"]
    config.certfile, config.keyfile = str(cert_file), str(key_file)
    config.alpn_protocols = ["h2"]  # as Apple: HTTP/2 or nothing
    config.accesslog = config.errorlog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def run() -> None:
        ready.set()
        await serve(receiver.app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    ready.wait(10)
    _wait_listening(receiver.port)
    try:
        yield receiver
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        if not thread.is_alive():
            loop.close()


def _wait_listening(port: int) -> None:
    import socket

    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


FcmAnswer = Callable[[Received, int], tuple[int, dict[str, Any]]]


def _fcm_ok(request: Received, n: int) -> tuple[int, dict[str, Any]]:
    if request.json()["message"]["token"] == "dead":
        return 404, {"error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}}
    return 200, {"name": f"projects/{FCM_PROJECT}/messages/{n + 1}"}


@dataclass
class FcmReceiver:
    """The token endpoint and FCM, sharing which access tokens were issued. ``answer`` decides for sends
    with a valid bearer token; ``requests`` are those sends (token requests are in ``assertions``)."""

    public_key: rsa.RSAPublicKey
    client_email: str
    answer: FcmAnswer = _fcm_ok
    url: str = ""
    issued: dict[str, float] = field(default_factory=dict)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    sends: list[Received] = field(default_factory=list)
    throttle: Throttle = field(default_factory=Throttle)
    expires_in: int = 3600
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def requests(self) -> list[Received]:
        return self.sends

    def respond(self, request: Received, _n: int) -> Answer:
        if request.path == "/token":
            return self._token(request)
        if request.path == f"/v1/projects/{FCM_PROJECT}/messages:send":
            return self._send(request)
        return 404, {"error": {"status": "NOT_FOUND"}}

    def _token(self, request: Received) -> tuple[int, dict[str, Any]]:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self.public_key,
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,
            )
        except jwt.PyJWTError as exc:
            return 400, {"error": "invalid_grant", "error_description": str(exc)}
        if claims.get("iss") != self.client_email or FCM_SCOPE not in str(claims.get("scope", "")).split():
            return 400, {"error": "invalid_scope"}
        token = f"ya29.{secrets.token_urlsafe(24)}"
        with self.lock:
            self.assertions.append(claims)
            self.issued[token] = time.time() + self.expires_in
        return 200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}

    def _send(self, request: Received) -> Answer:
        with self.lock:
            self.sends.append(request)
            index = len(self.sends) - 1
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            valid = scheme == "Bearer" and self.issued.get(token, 0) > time.time()
        if not valid:
            return 401, {"error": {"status": "UNAUTHENTICATED"}}
        throttled = self.throttle.next()
        if throttled is not None:
            status, retry_after = throttled
            error = {"error": {"status": "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE"}}
            return status, error, {"Retry-After": retry_after} if retry_after is not None else {}
        return self.answer(request, index)


@contextmanager
def fcm_receiver(tmp: Path, answer: FcmAnswer = _fcm_ok) -> Iterator[tuple[FcmReceiver, Path]]:
    """The receiver and a service-account key file whose ``token_uri`` is the receiver's token endpoint."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    receiver = FcmReceiver(key.public_key(), f"push@{FCM_PROJECT}.iam.gserviceaccount.com", answer=answer)

    with http_receiver(receiver.respond) as server:
        receiver.url = server.url
        key_file = tmp / "fcm-service-account.json"
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        key_file.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": FCM_PROJECT,
                    "private_key_id": "0123456789abcdef",
                    "private_key": pem,
                    "client_email": receiver.client_email,
                    "client_id": "100000000000000000001",
                    "token_uri": receiver.token_uri,
                }
            )
        )
        yield receiver, key_file


@dataclass
class PushProviders:
    """Both receivers, and the settings (and environment) that point a messaging service at them."""

    fcm: FcmReceiver
    apns: ApnsReceiver
    settings: dict[str, Any]
    env: dict[str, str]


@contextmanager
def push_providers(
    tmp: Path, *, fcm_answer: FcmAnswer = _fcm_ok, apns_answer: ApnsAnswer = _apns_ok
) -> Iterator[PushProviders]:
    """FCM and APNs receivers with their credentials written under ``tmp``. While open, ``SSL_CERT_FILE``
    names the test CA, as an operator behind a private CA would set it, so the APNs client trusts the
    receiver's certificate."""
    key_pem, public_key = apns_key_pem()
    apns_key = tmp / "AuthKey_test.p8"
    apns_key.write_bytes(key_pem)
    with fcm_receiver(tmp, fcm_answer) as (fcm, fcm_key), apns_receiver(public_key, tmp, apns_answer) as apns:
        ca_file = tmp / "test-ca.pem"
        apns.ca.cert_pem.write_to_path(str(ca_file))
        settings: dict[str, Any] = {
            "fcm_url": fcm.url,
            "fcm_credentials_file": fcm_key,
            "apns_url": f"{apns.url}?topic=com.shop.app",
            "apns_key_file": apns_key,
            "apns_key_id": APNS_KEY_ID,
            "apns_team_id": APNS_TEAM_ID,
        }
        env = {f"TAPWIRE_{name.upper()}": str(value) for name, value in settings.items()}
        env["SSL_CERT_FILE"] = str(ca_file)
        previous = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(ca_file)
        try:
            yield PushProviders(fcm, apns, settings, env)
        finally:
            if previous is None:
                os.environ.pop("SSL_CERT_FILE", None)
            else:
                os.environ["SSL_CERT_FILE"] = previous

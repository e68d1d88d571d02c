"""Push: FCM HTTP v1 and APNs adapters, and a router choosing by token kind.

``TAPWIRE_FCM_URL`` is ``https://fcm.googleapis.com`` (the project comes from the credentials) or
``https://fcm.googleapis.com/v1/projects/<project>``; requests carry an OAuth 2.0 access token minted from the
service-account key in ``TAPWIRE_FCM_CREDENTIALS_FILE`` (:mod:`.fcm_token`). ``TAPWIRE_APNS_URL`` is
``https://api.push.apple.com?topic=<bundle id>``; requests go over HTTP/2, as Apple requires, with a provider
token signed by the ``.p8`` key in ``TAPWIRE_APNS_KEY_FILE`` (:mod:`.apns_token`). Credentials never travel in
the URLs, which may sit in a ConfigMap; a URL with a password is refused.

Tokens the provider reports as gone come back as ``unregistered`` so the sender stops using them. A 429 or 503
with ``Retry-After`` pauses every send to that provider (:class:`~.http_retry.ProviderPause`).
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import orjson

from tapwire_messaging.channels.apns_token import ApnsProviderToken
from tapwire_messaging.channels.base import ChannelAdapter, OutboundMessage, SendResult
from tapwire_messaging.channels.fcm_token import TokenUnavailable
from tapwire_messaging.channels.http_retry import (
    HttpAnswer,
    ProviderPause,
    RetryPolicy,
    outcome_for_status,
    post_with_retries,
)

_FCM_GONE = ("UNREGISTERED", "NOT_FOUND")
_APNS_GONE = ("Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic")


class FcmCredentials(Protocol):
    """What the FCM adapter needs from its token source (:class:`~.fcm_token.FcmAccessToken`)."""

    async def bearer(self) -> str:
        """The current access token; raises TokenUnavailable when none can be had."""
        ...

    def expired(self, token: str) -> None:
        """The provider refused ``token``; the next ``bearer`` gets a new one."""
        ...

    def close(self) -> None: ...


def provider_url(url: str, setting: str) -> tuple[str, dict[str, str]]:
    """(URL without query or trailing slash, query parameters). Raises ValueError for a URL that is not
    http(s) or that carries credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{setting} is not an http(s) URL: {url!r}")
    if parts.password or parts.username:
        raise ValueError(
            f"{setting} carries credentials; they belong in the provider's key file (see docs/messaging.md)"
        )
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), query


class FcmAdapter(ChannelAdapter):
    """``POST {base}/v1/projects/<project>/messages:send`` with ``{"message": {"token", "notification",
    "data"}}`` and ``Authorization: Bearer <access token>``. A 401 refreshes the token and tries once more."""

    name = "fcm"

    def __init__(
        self,
        base_url: str,
        *,
        credentials: FcmCredentials,
        project_id: str | None = None,
        policy: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """Raises ValueError when the URL names no project and ``project_id`` is None."""
        base, _ = provider_url(base_url, "TAPWIRE_FCM_URL")
        if "/v1/projects/" not in base:
            if not project_id:
                raise ValueError("TAPWIRE_FCM_URL names no project and the credentials name none")
            base = f"{base}/v1/projects/{project_id}"
        self.url = f"{base}/messages:send"
        self.credentials = credentials
        self.policy = policy or RetryPolicy(attempts=3)
        self.pause = ProviderPause()
        self._client = httpx.AsyncClient(timeout=timeout_s, verify=verify, follow_redirects=False)

    async def send(self, message: OutboundMessage) -> SendResult:
        payload: dict[str, Any] = {
            "token": message.to,
            "notification": {"title": message.title or "", "body": message.body},
        }
        data = {key: str(value) for key, value in message.data.items() if key != "android"}
        if data:
            payload["data"] = data  # FCM data values must be strings
        android = message.data.get("android")
        if isinstance(android, dict):
            payload["android"] = android
        body = orjson.dumps({"message": payload})
        for _ in range(2):
            try:
                token = await self.credentials.bearer()
            except TokenUnavailable as exc:
                return SendResult("failed", f"no FCM access token: {exc}")
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
            answer = await post_with_retries(
                self._client,
                self.url,
                content=body,
                headers=headers.copy,
                policy=self.policy,
                pause=self.pause,
            )
            if answer.response is None or answer.response.status_code != 401:
                break
            self.credentials.expired(token)
        return self._result(answer)

    @staticmethod
    def _result(answer: HttpAnswer) -> SendResult:
        response = answer.response
        if response is None:
            return SendResult("failed", answer.error, retry_after_s=answer.retry_after_s)
        if response.is_success:
            name = _json(response).get("name")
            return SendResult("sent", f"HTTP {response.status_code}", provider_id=str(name) if name else None)
        text = response.text
        detail = f"HTTP {response.status_code} {text[:200]}"
        if response.status_code in (400, 404) and any(code in text for code in _FCM_GONE):
            return SendResult("unregistered", detail)
        return SendResult(
            outcome_for_status(response.status_code), detail, retry_after_s=answer.retry_after_s
        )

    async def close(self) -> None:
        await self._client.aclose()
        self.credentials.close()


class ApnsAdapter(ChannelAdapter):
    """``POST {base}/3/device/<token>`` over HTTP/2 with ``{"aps": {"alert": {...}}}``, ``apns-id`` from the
    outbox key and ``authorization: bearer <provider token>``. An ``ExpiredProviderToken`` answer renews the
    token and tries once more."""

    name = "apns"

    def __init__(
        self,
        base_url: str,
        *,
        token: ApnsProviderToken,
        policy: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """Raises ValueError when the URL names no ``?topic=`` (the app's bundle id)."""
        self.url, query = provider_url(base_url, "TAPWIRE_APNS_URL")
        self.topic = query.get("topic", "")
        if not self.topic:
            raise ValueError("TAPWIRE_APNS_URL needs the app's bundle id as ?topic=")
        self.token = token
        self.policy = policy or RetryPolicy(attempts=3)
        self.pause = ProviderPause()
        # Apple speaks HTTP/2 only: no HTTP/1.1 fallback that would be refused anyway.
        self._client = httpx.AsyncClient(
            http1=False, http2=True, timeout=timeout_s, verify=verify, follow_redirects=False
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        extra = {key: value for key, value in message.data.items() if key != "aps"}
        body = orjson.dumps({"aps": {"alert": {"title": message.title or "", "body": message.body}}, **extra})
        apns_id = str(uuid.uuid5(uuid.NAMESPACE_URL, message.idempotency_key))
        for _ in range(2):
            bearer = self.token.bearer()
            headers = {
                "content-type": "application/json",
                "apns-id": apns_id,
                "apns-push-type": "alert",
                "apns-topic": self.topic,
                "authorization": f"bearer {bearer}",
            }
            answer = await post_with_retries(
                self._client,
                f"{self.url}/3/device/{message.to}",
                content=body,
                headers=headers.copy,
                policy=self.policy,
                pause=self.pause,
            )
            response = answer.response
            if response is None or _json(response).get("reason") != "ExpiredProviderToken":
                break
            self.token.expired(bearer)
        response = answer.response
        if response is None:
            return SendResult("failed", answer.error, retry_after_s=answer.retry_after_s)
        if response.is_success:
            return SendResult("sent", "HTTP 200", provider_id=response.headers.get("apns-id", apns_id))
        reason = str(_json(response).get("reason", ""))
        detail = f"HTTP {response.status_code} {reason}".strip()
        if response.status_code == 410 or reason in _APNS_GONE:
            return SendResult("unregistered", detail)
        return SendResult(
            outcome_for_status(response.status_code), detail, retry_after_s=answer.retry_after_s
        )

    async def close(self) -> None:
        await self._client.aclose()


class PushRouter(ChannelAdapter):
    """Sends a push to the adapter for its token kind (``fcm``/``gcm`` → FCM, ``apns`` → APNs, ``chrome`` (a
    browser's web push subscription, whatever the browser) → web push)."""

    name = "push"

    def __init__(
        self, fcm: FcmAdapter | None, apns: ApnsAdapter | None, webpush: ChannelAdapter | None = None
    ) -> None:
        self.fcm = fcm
        self.apns = apns
        self.webpush = webpush

    async def send(self, message: OutboundMessage) -> SendResult:
        adapters: dict[str | None, ChannelAdapter | None] = {
            "fcm": self.fcm,
            "gcm": self.fcm,
            "apns": self.apns,
            "chrome": self.webpush,
        }
        if message.platform not in adapters:
            return SendResult("rejected", f"unsupported push token type {message.platform!r}")
        adapter = adapters[message.platform]
        if adapter is None:
            return SendResult("rejected", f"no provider configured for {message.platform} tokens")
        return await adapter.send(message)

    async def close(self) -> None:
        for adapter in (self.fcm, self.apns, self.webpush):
            if adapter is not None:
                await adapter.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

"""Push: an FCM-HTTP-v1-shaped and an APNs-shaped adapter over HTTP, and a router choosing by token kind.

Base URLs come from ``TAPWIRE_FCM_URL`` (``https://fcm.googleapis.com/v1/projects/<project>``) and
``TAPWIRE_APNS_URL`` (``https://api.push.apple.com?topic=<bundle id>``). A password in the URL's user-info
travels as the bearer token (an OAuth access token for FCM, a provider JWT for APNs). Tokens the provider
reports as gone come back as ``unregistered`` so the sender stops using them.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import httpx
import orjson

from tapwire_messaging.channels.base import ChannelAdapter, OutboundMessage, SendResult
from tapwire_messaging.channels.http_retry import RetryPolicy, outcome_for_status, post_with_retries

_FCM_GONE = ("UNREGISTERED", "NOT_FOUND")
_APNS_GONE = ("Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic")


def split_credentials(url: str) -> tuple[str, str | None, dict[str, str]]:
    """(URL without user-info and query, bearer token or None, query parameters)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    token = unquote(parts.password) if parts.password else None
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), token, query


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class FcmAdapter(ChannelAdapter):
    """``POST {base}/messages:send`` with ``{"message": {"token", "notification", "data"}}``."""

    name = "fcm"

    def __init__(self, base_url: str, *, policy: RetryPolicy | None = None, timeout_s: float = 10.0) -> None:
        self.url, self._token, _ = split_credentials(base_url)
        self.policy = policy or RetryPolicy(attempts=3)
        self._client = httpx.AsyncClient(timeout=timeout_s)

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
        answer = await post_with_retries(
            self._client,
            f"{self.url}/messages:send",
            content=body,
            headers=lambda: {"Content-Type": "application/json", **_auth(self._token)},
            policy=self.policy,
        )
        response = answer.response
        if response is None:
            return SendResult("failed", answer.error)
        if response.is_success:
            name = _json(response).get("name")
            return SendResult("sent", f"HTTP {response.status_code}", provider_id=str(name) if name else None)
        text = response.text
        if response.status_code in (400, 404) and any(code in text for code in _FCM_GONE):
            return SendResult("unregistered", f"HTTP {response.status_code} {text[:200]}")
        return SendResult(
            outcome_for_status(response.status_code), f"HTTP {response.status_code} {text[:200]}"
        )

    async def close(self) -> None:
        await self._client.aclose()


class ApnsAdapter(ChannelAdapter):
    """``POST {base}/3/device/<token>`` with ``{"aps": {"alert": {...}}}`` and ``apns-id`` from the outbox key.

    Apple's servers speak HTTP/2 only; httpx negotiates it when the ``h2`` package is installed.
    """

    name = "apns"

    def __init__(self, base_url: str, *, policy: RetryPolicy | None = None, timeout_s: float = 10.0) -> None:
        self.url, self._token, query = split_credentials(base_url)
        self.topic = query.get("topic", "")
        self.policy = policy or RetryPolicy(attempts=3)
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def send(self, message: OutboundMessage) -> SendResult:
        extra = {key: value for key, value in message.data.items() if key != "aps"}
        body = orjson.dumps({"aps": {"alert": {"title": message.title or "", "body": message.body}}, **extra})
        apns_id = str(uuid.uuid5(uuid.NAMESPACE_URL, message.idempotency_key))
        headers = {
            "Content-Type": "application/json",
            "apns-id": apns_id,
            "apns-push-type": "alert",
            **({"apns-topic": self.topic} if self.topic else {}),
            **_auth(self._token),
        }
        answer = await post_with_retries(
            self._client,
            f"{self.url}/3/device/{message.to}",
            content=body,
            headers=lambda: headers,
            policy=self.policy,
        )
        response = answer.response
        if response is None:
            return SendResult("failed", answer.error)
        if response.is_success:
            return SendResult("sent", "HTTP 200", provider_id=response.headers.get("apns-id", apns_id))
        reason = str(_json(response).get("reason", ""))
        detail = f"HTTP {response.status_code} {reason}".strip()
        if response.status_code == 410 or reason in _APNS_GONE:
            return SendResult("unregistered", detail)
        return SendResult(outcome_for_status(response.status_code), detail)

    async def close(self) -> None:
        await self._client.aclose()


class PushRouter(ChannelAdapter):
    """Sends a push to the adapter for its token kind (``fcm``/``gcm`` → FCM, ``apns`` → APNs)."""

    name = "push"

    def __init__(self, fcm: FcmAdapter | None, apns: ApnsAdapter | None) -> None:
        self.fcm = fcm
        self.apns = apns

    async def send(self, message: OutboundMessage) -> SendResult:
        adapter: ChannelAdapter | None = self.apns if message.platform == "apns" else self.fcm
        if message.platform not in ("fcm", "gcm", "apns"):
            return SendResult("rejected", f"unsupported push token type {message.platform!r}")
        if adapter is None:
            return SendResult("rejected", f"no provider configured for {message.platform} tokens")
        return await adapter.send(message)

    async def close(self) -> None:
        for adapter in (self.fcm, self.apns):
            if adapter is not None:
                await adapter.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

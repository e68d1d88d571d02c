"""Webhooks: an HTTP POST of JSON signed with HMAC-SHA256 over ``"<timestamp>.<body>"``.

Receivers verify with :func:`verify_signature` (or its few lines in any language): recompute the HMAC with the
shared secret over the ``X-Tapwire-Timestamp`` header, a dot and the raw body, compare in constant time with the
hex digest after ``v1=`` in ``X-Tapwire-Signature``, and refuse timestamps older than their tolerance (replays).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Callable

import orjson

from tapwire_core.egress import EgressPolicy, Resolver, guarded_client, system_resolver
from tapwire_messaging.channels.base import ChannelAdapter, OutboundMessage, SendResult
from tapwire_messaging.channels.http_retry import (
    RetryPolicy,
    Sleep,
    outcome_for_status,
    post_with_retries,
)

TIMESTAMP_HEADER = "X-Tapwire-Timestamp"
SIGNATURE_HEADER = "X-Tapwire-Signature"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify_signature(
    secret: str,
    *,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is ours for this body and timestamp, and the timestamp is recent enough."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookAdapter(ChannelAdapter):
    """POSTs ``message.data`` as JSON to ``message.to``, signed with ``message.secret``.

    The URL is the customer's, so it goes through the guarded client: only public addresses, or what the
    operator's ``egress`` allow-list names, on every connection; a URL leading elsewhere is ``rejected``
    without a request. Redirects are not followed (a 3xx is ``rejected``). Retries 5xx, 408, 429 and
    transport errors with exponential backoff and full jitter, within one send; any other 4xx is final
    (``rejected``). The outbox key travels as ``Idempotency-Key`` so receivers can drop a repeat after a crash.
    """

    name = "webhook"

    def __init__(
        self,
        *,
        policy: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        sleep: Sleep | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        egress: EgressPolicy | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._client = guarded_client(
            egress or EgressPolicy(), timeout_s=timeout_s, deadline_s=3 * timeout_s, resolver=resolver
        )
        self._sleep = sleep
        self._clock = clock
        self._rng = rng

    async def send(self, message: OutboundMessage) -> SendResult:
        if not message.secret:
            raise ValueError("a webhook message needs its campaign's secret")
        body = orjson.dumps(dict(message.data))
        secret = message.secret

        def headers() -> dict[str, str]:
            timestamp = str(int(self._clock()))
            return {
                "Content-Type": "application/json",
                "Idempotency-Key": message.idempotency_key,
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(secret, timestamp, body),
            }

        # No ProviderPause shared between sends: each customer's endpoint throttles only its own messages.
        answer = await post_with_retries(
            self._client,
            message.to,
            content=body,
            headers=headers,
            policy=self.policy,
            rng=self._rng,
            sleep=self._sleep or asyncio.sleep,
        )
        response = answer.response
        if answer.refused:
            return SendResult("rejected", f"refused: {answer.error}")
        if response is None:
            return SendResult(
                "failed",
                f"after {answer.attempts} attempts: {answer.error}",
                retry_after_s=answer.retry_after_s,
            )
        detail = f"HTTP {response.status_code} after {answer.attempts} attempts"
        if response.is_success:
            return SendResult("sent", detail, provider_id=response.headers.get("x-request-id"))
        if response.status_code == 410:
            return SendResult("unregistered", detail)
        return SendResult(
            outcome_for_status(response.status_code), detail, retry_after_s=answer.retry_after_s
        )

    async def close(self) -> None:
        await self._client.aclose()

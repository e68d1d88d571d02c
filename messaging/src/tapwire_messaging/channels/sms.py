"""SMS through a Twilio-shaped API: a form POST of ``To``, ``From`` and ``Body`` with HTTP Basic credentials.

``TAPWIRE_SMS_URL`` is the Messages endpoint with the account SID and auth token as user-info and the sender
number as ``From``: ``https://AC…:token@api.twilio.com/2010-04-01/Accounts/AC…/Messages.json?From=%2B1555…``.

The same endpoint erases a sent message's record at the provider: ``DELETE …/Messages/{MessageSid}.json``
answers 204, or 404 when the record is already gone (:class:`TwilioMessageEraser`, used for privacy erasures).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit, urlunsplit

import httpx

from tapwire_messaging.channels.base import ChannelAdapter, OutboundMessage, SendResult
from tapwire_messaging.channels.http_retry import (
    ProviderPause,
    RetryPolicy,
    outcome_for_status,
    post_with_retries,
    request_with_retries,
)

# Twilio error codes meaning the number will never take messages from us: invalid, unsubscribed (STOP), landline.
_GONE_CODES = (21211, 21610, 21614)


@dataclass(frozen=True, slots=True)
class TwilioEndpoint:
    """``TAPWIRE_SMS_URL`` taken apart: the Messages URL without credentials or query, the sender, the auth."""

    messages_url: str
    sender: str
    auth: tuple[str, str] | None

    @classmethod
    def from_url(cls, url: str) -> TwilioEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"TAPWIRE_SMS_URL is not an http(s) URL: {url!r}")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        sender = query.get("From", "")
        if not sender:
            raise ValueError("TAPWIRE_SMS_URL needs the sender number as ?From=")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
        return cls(urlunsplit((parts.scheme, netloc, parts.path, "", "")), sender, auth)

    def message_url(self, sid: str) -> str:
        """``…/Messages/{sid}.json``; the SID is percent-encoded so it cannot leave its path segment."""
        base = self.messages_url.removesuffix(".json").rstrip("/")
        return f"{base}/{quote(sid, safe='')}.json"


class TwilioSmsAdapter(ChannelAdapter):
    name = "sms"

    def __init__(self, url: str, *, policy: RetryPolicy | None = None, timeout_s: float = 10.0) -> None:
        endpoint = TwilioEndpoint.from_url(url)
        self.sender = endpoint.sender
        self.url = endpoint.messages_url
        self.policy = policy or RetryPolicy(attempts=3)
        self.pause = ProviderPause()
        self._client = httpx.AsyncClient(timeout=timeout_s, auth=endpoint.auth)

    async def send(self, message: OutboundMessage) -> SendResult:
        body = urlencode({"To": message.to, "From": self.sender, "Body": message.body}).encode()
        answer = await post_with_retries(
            self._client,
            self.url,
            content=body,
            headers=lambda: {
                "Content-Type": "application/x-www-form-urlencoded",
                "I-Twilio-Idempotency-Token": message.idempotency_key,
            },
            policy=self.policy,
            pause=self.pause,
        )
        response = answer.response
        if response is None:
            return SendResult("failed", answer.error, retry_after_s=answer.retry_after_s)
        payload = _json(response)
        if response.is_success:
            sid = payload.get("sid")
            return SendResult("sent", f"HTTP {response.status_code}", provider_id=str(sid) if sid else None)
        detail = f"HTTP {response.status_code} {payload.get('code', '')} {payload.get('message', '')}".strip()
        if payload.get("code") in _GONE_CODES:
            return SendResult("unregistered", detail)
        return SendResult(
            outcome_for_status(response.status_code), detail, retry_after_s=answer.retry_after_s
        )

    async def close(self) -> None:
        await self._client.aclose()


class ProviderUnavailable(Exception):
    """The provider did not confirm a deletion (transport error, 5xx after retries, or a refusal). The message
    carries the HTTP status or the error class, never a message SID or a number."""


@dataclass(frozen=True, slots=True)
class Deleted:
    """How a batch of deletions went: records deleted now, and records the provider no longer had (404)."""

    deleted: int = 0
    already_gone: int = 0


class TwilioMessageEraser:
    """Deletes message records at the provider, ``concurrency`` at a time, each with retries and backoff.

    Every DELETE is idempotent (a repeat answers 404, counted as already gone), so a caller that dies half-way
    simply runs the whole batch again."""

    def __init__(
        self,
        url: str,
        *,
        policy: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        concurrency: int = 8,
    ) -> None:
        self.endpoint = TwilioEndpoint.from_url(url)
        self.policy = policy or RetryPolicy(attempts=4)
        self.pause = ProviderPause()
        self._timeout_s = timeout_s
        self._concurrency = concurrency

    async def delete(self, sids: Iterable[str]) -> Deleted:
        """Delete every record; raises :class:`ProviderUnavailable` unless each one is confirmed gone."""
        limit = asyncio.Semaphore(self._concurrency)
        async with httpx.AsyncClient(timeout=self._timeout_s, auth=self.endpoint.auth) as client:

            async def one(sid: str) -> bool:
                async with limit:
                    answer = await request_with_retries(
                        client, "DELETE", self.endpoint.message_url(sid), policy=self.policy, pause=self.pause
                    )
                response = answer.response
                if response is None:
                    raise ProviderUnavailable(answer.error.split(":", 1)[0] or "no answer")
                if response.status_code == 404:
                    return False
                if not response.is_success:
                    # Twilio refuses to delete a message still queued or sending; that and any other refusal
                    # is retried later rather than reported as done.
                    raise ProviderUnavailable(f"HTTP {response.status_code}")
                return True

            # Every DELETE runs to its end before the client closes; the first failure is then raised.
            results = await asyncio.gather(*(one(sid) for sid in sorted(set(sids))), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        deleted = sum(1 for result in results if result is True)
        return Deleted(deleted=deleted, already_gone=len(results) - deleted)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

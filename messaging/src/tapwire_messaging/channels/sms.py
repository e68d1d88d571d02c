"""SMS through a Twilio-shaped API: a form POST of ``To``, ``From`` and ``Body`` with HTTP Basic credentials.

``TAPWIRE_SMS_URL`` is the Messages endpoint with the account SID and auth token as user-info and the sender
number as ``From``: ``https://AC…:token@api.twilio.com/2010-04-01/Accounts/AC…/Messages.json?From=%2B1555…``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import httpx

from tapwire_messaging.channels.base import ChannelAdapter, OutboundMessage, SendResult
from tapwire_messaging.channels.http_retry import RetryPolicy, outcome_for_status, post_with_retries

# Twilio error codes meaning the number will never take messages from us: invalid, unsubscribed (STOP), landline.
_GONE_CODES = (21211, 21610, 21614)


class TwilioSmsAdapter(ChannelAdapter):
    name = "sms"

    def __init__(self, url: str, *, policy: RetryPolicy | None = None, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"TAPWIRE_SMS_URL is not an http(s) URL: {url!r}")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.sender = query.get("From", "")
        if not self.sender:
            raise ValueError("TAPWIRE_SMS_URL needs the sender number as ?From=")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
        self.policy = policy or RetryPolicy(attempts=3)
        self._client = httpx.AsyncClient(timeout=timeout_s, auth=auth)

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
        )
        response = answer.response
        if response is None:
            return SendResult("failed", answer.error)
        payload = _json(response)
        if response.is_success:
            sid = payload.get("sid")
            return SendResult("sent", f"HTTP {response.status_code}", provider_id=str(sid) if sid else None)
        detail = f"HTTP {response.status_code} {payload.get('code', '')} {payload.get('message', '')}".strip()
        if payload.get("code") in _GONE_CODES:
            return SendResult("unregistered", detail)
        return SendResult(outcome_for_status(response.status_code), detail)

    async def close(self) -> None:
        await self._client.aclose()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

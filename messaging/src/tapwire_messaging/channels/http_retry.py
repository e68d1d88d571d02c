"""Retrying HTTP requests: exponential backoff with full jitter on 5xx, 429 and transport errors; 4xx is final."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

from tapwire_core.egress import EgressRefused
from tapwire_messaging.channels.base import SendOutcome

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)] (AWS's recommended variant)."""
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * (2**attempt)))


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The last answer: a response, or the transport error that prevented one. ``refused``: the URL leads to
    an address customers may not reach (no request was sent, and a retry would not change that)."""

    response: httpx.Response | None
    error: str = ""
    attempts: int = 1
    refused: bool = False


def is_retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


async def post_with_retries(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Callable[[], Mapping[str, str]],
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> HttpAnswer:
    """POST until a non-retryable answer or ``policy.attempts`` tries. ``headers`` is called per attempt (so a
    signature can carry a fresh timestamp). Never raises for HTTP or transport failures."""
    return await request_with_retries(
        client, "POST", url, content=content, headers=headers, policy=policy, sleep=sleep, rng=rng
    )


async def request_with_retries(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    content: bytes | None = None,
    headers: Callable[[], Mapping[str, str]] = dict,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> HttpAnswer:
    """Send ``method`` until a non-retryable answer or ``policy.attempts`` tries; the contract of
    :func:`post_with_retries` for any method (the method must be safe to repeat, as POST with an idempotency
    key and DELETE are)."""
    rng = rng or random.Random()
    last = HttpAnswer(None, "not attempted", 0)
    for attempt in range(policy.attempts):
        try:
            response = await client.request(method, url, content=content, headers=dict(headers()))
        except EgressRefused as exc:
            return HttpAnswer(None, str(exc), attempt + 1, refused=True)
        except httpx.HTTPError as exc:
            last = HttpAnswer(None, f"{type(exc).__name__}: {exc}".rstrip(": "), attempt + 1)
        else:
            last = HttpAnswer(response, "", attempt + 1)
            if not is_retryable(response.status_code):
                return last
        if attempt + 1 < policy.attempts:
            await sleep(policy.delay(attempt, rng))
    return last


def outcome_for_status(status: int) -> SendOutcome:
    """A non-2xx answer that is not "address gone": retryable statuses fail for now, the rest for good."""
    return "failed" if is_retryable(status) else "rejected"

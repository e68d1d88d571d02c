"""Retrying HTTP requests: exponential backoff with full jitter on 5xx, 429 and transport errors; 4xx is final.

A 429 or 503 with ``Retry-After`` (seconds or an HTTP date, as FCM, APNs and Twilio send it) is honoured: the
next attempt waits at least that long, and a :class:`ProviderPause` shared by an adapter's sends holds every
other send to that provider too, so a throttled provider is not hammered by the other senders. A wait longer
than the policy lets one send sleep ends the send as ``failed`` with ``retry_after_s``, and the outbox retries
the message after that time.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

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


# A provider asking for more than this is still honoured, but only up to it (a misconfigured or hostile
# answer must not park a message for days).
MAX_RETRY_AFTER_S = 3600.0


@dataclass(slots=True)
class ProviderPause:
    """Until when one provider asked not to be called (monotonic clock), shared by an adapter's sends."""

    clock: Callable[[], float] = time.monotonic
    until: float = field(default=0.0)

    def remaining(self) -> float:
        return max(0.0, self.until - self.clock())

    def hold(self, seconds: float) -> None:
        self.until = max(self.until, self.clock() + seconds)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The last answer: a response, or the transport error that prevented one. ``refused``: the URL leads to
    an address customers may not reach (no request was sent, and a retry would not change that).
    ``retry_after_s``: the provider asked to be called again no sooner than this (429/503 ``Retry-After``)."""

    response: httpx.Response | None
    error: str = ""
    attempts: int = 1
    refused: bool = False
    retry_after_s: float | None = None


def retry_after_s(response: httpx.Response, now: float | None = None) -> float | None:
    """The wait a 429 or 503 asks for in ``Retry-After`` (delta seconds or an HTTP date), capped at
    MAX_RETRY_AFTER_S; None when there is none or it does not parse."""
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


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
    pause: ProviderPause | None = None,
) -> HttpAnswer:
    """POST until a non-retryable answer or ``policy.attempts`` tries. ``headers`` is called per attempt (so a
    signature can carry a fresh timestamp). Never raises for HTTP or transport failures."""
    return await request_with_retries(
        client,
        "POST",
        url,
        content=content,
        headers=headers,
        policy=policy,
        sleep=sleep,
        rng=rng,
        pause=pause,
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
    pause: ProviderPause | None = None,
) -> HttpAnswer:
    """Send ``method`` until a non-retryable answer or ``policy.attempts`` tries; the contract of
    :func:`post_with_retries` for any method (the method must be safe to repeat, as POST with an idempotency
    key and DELETE are). With ``pause``, a ``Retry-After`` holds every send sharing it, and a send that would
    wait past ``policy.max_delay_s`` returns at once with ``retry_after_s`` and without a request."""
    rng = rng or random.Random()
    pause = pause or ProviderPause()
    last = HttpAnswer(None, "not attempted", 0)
    for attempt in range(policy.attempts):
        waiting = pause.remaining()
        if waiting > policy.max_delay_s:
            error = last.error or f"the provider asked to wait {waiting:.0f}s"
            return HttpAnswer(last.response, error, last.attempts, retry_after_s=waiting)
        if waiting > 0:
            await sleep(waiting)
        try:
            response = await client.request(method, url, content=content, headers=dict(headers()))
        except EgressRefused as exc:
            return HttpAnswer(None, str(exc), attempt + 1, refused=True)
        except httpx.HTTPError as exc:
            last = HttpAnswer(None, f"{type(exc).__name__}: {exc}".rstrip(": "), attempt + 1)
        else:
            wait = retry_after_s(response)
            last = HttpAnswer(response, "", attempt + 1, retry_after_s=wait)
            if not is_retryable(response.status_code):
                return last
            if wait is not None:
                pause.hold(wait)
                continue  # the pause decides: wait for it, or give the message back to the outbox
        if attempt + 1 < policy.attempts:
            await sleep(policy.delay(attempt, rng))
    return last


def outcome_for_status(status: int) -> SendOutcome:
    """A non-2xx answer that is not "address gone": retryable statuses fail for now, the rest for good."""
    return "failed" if is_retryable(status) else "rejected"

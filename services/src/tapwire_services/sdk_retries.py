"""The command-line clients' requests (``tapwire generate --upload``, ``tapwire export``), retried as CleverTap's
SDKs retry: 429 and 503 again after ``Retry-After`` (at most 60 s), a connection failure after a back-off from
0.5 s doubling to 30 s; any other status than 200 is final."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

RETRIED_STATUSES = frozenset({429, 503})


async def request_with_retries(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    max_attempts: int,
    on_retry: Callable[[], None],
    refused: Callable[[str], Exception],
    describe: Callable[[httpx.Response], str],
    **kwargs: Any,
) -> httpx.Response:
    """The 200 response to ``method path`` (``kwargs`` go to httpx), tried at most ``max_attempts`` times;
    ``on_retry`` is called before each retry. Raises ``refused(message)`` for a final status (the message says
    it, with ``describe(response)``) or when every attempt failed."""
    delay = 0.5
    for attempt in range(1, max_attempts + 1):
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if attempt == max_attempts:
                raise refused(f"the server was unreachable {max_attempts} times: {exc!r}") from exc
        else:
            if response.status_code == 200:
                return response
            if response.status_code not in RETRIED_STATUSES or attempt == max_attempts:
                raise refused(f"HTTP {response.status_code}: {describe(response)}")
            delay = max(delay, _retry_after(response))
        on_retry()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
    raise refused("unreachable")


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(float(response.headers.get("retry-after", "0")), 60.0)
    except ValueError:
        return 0.0

"""A small CleverTap upload client (100-record batches, as the official clients send)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from tapwire_services.generate import batches


async def upload_all(
    records: Sequence[dict[str, Any]],
    *,
    url: str,
    account: str | None,
    passcode: str | None,
    batch: int = 100,
) -> int:
    """Upload ``records`` in order; returns how many the server processed. Raises on any non-200."""
    if not account or not passcode:
        raise SystemExit("--account and --passcode are required with --upload")
    headers = {
        "X-CleverTap-Account-Id": account,
        "X-CleverTap-Passcode": passcode,
        "Content-Type": "application/json",
    }
    processed = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        for chunk in batches(iter(records), batch):
            response = await client.post("/1/upload", content=orjson.dumps({"d": chunk}))
            response.raise_for_status()
            processed += int(response.json()["processed"])
    return processed

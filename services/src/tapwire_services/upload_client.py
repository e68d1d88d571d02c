"""A small CleverTap upload client: 100-record batches as the official clients send, streamed from an iterator,
with the SDKs' retry behaviour (429 and 503 honour ``Retry-After``; connection failures back off) and a
progress bar on standard error."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tqdm import tqdm

from tapwire_services.generate import batches
from tapwire_services.sdk_retries import request_with_retries


@dataclass
class UploadSummary:
    records: int = 0
    processed: int = 0
    batches: int = 0
    retries: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        return (
            f"uploaded {self.records:,} records in {self.batches:,} batches "
            f"({self.processed:,} processed, {self.retries} retries) in {self.seconds:.1f} s, {rate:,.0f} records/s"
        )


class UploadFailed(Exception):
    """The server refused a batch for good (a status other than 200, 429 or 503), or retries ran out."""


async def upload_all(
    records: Iterator[dict[str, Any]],
    *,
    url: str,
    account: str | None,
    passcode: str | None,
    batch: int = 100,
    total: int | None = None,
    max_attempts: int = 8,
    progress: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> UploadSummary:
    """Upload ``records`` in order without holding more than one batch; returns the summary. Raises
    UploadFailed when a batch is refused or ``max_attempts`` tries of one batch all failed."""
    if not account or not passcode:
        raise SystemExit("--account and --passcode are required with --upload")
    headers = {
        "X-CleverTap-Account-Id": account,
        "X-CleverTap-Passcode": passcode,
        "Content-Type": "application/json",
    }
    summary = UploadSummary()
    started = time.monotonic()
    bar = tqdm(
        total=total, unit=" records", unit_scale=True, file=sys.stderr, disable=not progress, leave=False
    )
    try:
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=30, transport=transport
        ) as client:
            for chunk in batches(records, batch):
                body = orjson.dumps({"d": chunk})
                response = await _send(client, body, summary, max_attempts=max_attempts)
                summary.processed += int(response.json().get("processed", 0))
                summary.records += len(chunk)
                summary.batches += 1
                bar.update(len(chunk))
    finally:
        bar.close()
        summary.seconds = time.monotonic() - started
    return summary


async def _send(
    client: httpx.AsyncClient, body: bytes, summary: UploadSummary, *, max_attempts: int
) -> httpx.Response:
    def retried() -> None:
        summary.retries += 1

    return await request_with_retries(
        client,
        "POST",
        "/1/upload",
        max_attempts=max_attempts,
        on_retry=retried,
        refused=UploadFailed,
        describe=lambda response: response.text[:500],
        content=body,
    )

"""``tapwire export events|profiles``: a CQL query's events or profiles from a running tapwire, page by page
through the ``/1/events.json`` / ``/1/profiles.json`` cursor protocol, written as JSON Lines.

One page is held at a time; 429 and 503 are retried honouring ``Retry-After`` and connection failures back
off, as the SDKs do; a progress bar goes to standard error and a one-line summary ends the run. A file is
written under ``<name>.partial`` and renamed only when the last page arrived, so a stopped export never
leaves a file that looks complete.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import httpx
import orjson
from tqdm import tqdm

from tapwire_services.sdk_retries import request_with_retries

ExportKind = Literal["events", "profiles"]


@dataclass
class ExportSummary:
    kind: ExportKind
    records: int = 0
    pages: int = 0
    retries: int = 0
    seconds: float = 0.0
    destination: str = "standard output"

    def line(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        return (
            f"exported {self.records:,} {self.kind} in {self.pages:,} pages to {self.destination} "
            f"({self.retries} retries) in {self.seconds:.1f} s, {rate:,.0f} records/s"
        )


class ExportFailed(Exception):
    """The server refused the query or a page for good, or retries ran out."""


async def export_all(
    kind: ExportKind,
    query: Any,
    *,
    url: str,
    account: str,
    passcode: str,
    out: IO[bytes],
    batch_size: int = 5000,
    max_attempts: int = 8,
    progress: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ExportSummary:
    """Write every record of ``query`` to ``out``, one JSON object per line; returns the summary. Raises
    ExportFailed when the query or a page is refused or ``max_attempts`` tries of one request all failed."""
    headers = {"X-CleverTap-Account-Id": account, "X-CleverTap-Passcode": passcode}
    path = f"/1/{kind}.json"
    summary = ExportSummary(kind)
    started = time.monotonic()
    bar = tqdm(unit=f" {kind}", unit_scale=True, file=sys.stderr, disable=not progress, leave=False)
    try:
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=120, transport=transport
        ) as client:
            opened = await _request(
                client, "POST", path, summary, max_attempts, params={"batch_size": batch_size}, json=query
            )
            cursor: str | None = opened.get("cursor")
            if not cursor:
                raise ExportFailed(f"the server answered without a cursor: {str(opened)[:300]}")
            while cursor:
                page = await _request(client, "GET", path, summary, max_attempts, params={"cursor": cursor})
                records = page.get("records") or []
                out.write(b"".join(orjson.dumps(record) + b"\n" for record in records))
                summary.records += len(records)
                summary.pages += 1
                bar.update(len(records))
                cursor = page.get("next_cursor")
    finally:
        bar.close()
        summary.seconds = time.monotonic() - started
    return summary


async def _request(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    summary: ExportSummary,
    max_attempts: int,
    **kwargs: Any,
) -> dict[str, Any]:
    def retried() -> None:
        summary.retries += 1

    response = await request_with_retries(
        client,
        method,
        path,
        max_attempts=max_attempts,
        on_retry=retried,
        refused=ExportFailed,
        describe=_message,
        **kwargs,
    )
    body: dict[str, Any] = response.json()
    return body


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return (
        str(body.get("error") or body.get("message") or body)[:500] if isinstance(body, dict) else str(body)
    )


def export_to(
    kind: ExportKind,
    query: Any,
    *,
    out_path: str | None,
    url: str,
    account: str,
    passcode: str,
    batch_size: int,
    progress: bool,
) -> ExportSummary:
    """The command's work: to ``out_path`` (via ``<out_path>.partial``, renamed when complete) or stdout."""
    if out_path in (None, "-"):
        summary = asyncio.run(
            export_all(
                kind,
                query,
                url=url,
                account=account,
                passcode=passcode,
                out=sys.stdout.buffer,
                batch_size=batch_size,
                progress=progress,
            )
        )
        sys.stdout.buffer.flush()
        return summary
    target = Path(out_path)
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        summary = asyncio.run(
            export_all(
                kind,
                query,
                url=url,
                account=account,
                passcode=passcode,
                out=out,
                batch_size=batch_size,
                progress=progress,
            )
        )
    os.replace(partial, target)
    summary.destination = str(target)
    return summary

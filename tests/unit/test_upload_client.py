"""``tapwire generate --upload``'s client: streams batches, retries 429/503 as the SDKs do, stops on a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tapwire_services.upload_client import UploadFailed, upload_all


def _records(n: int, pulled: list[int]) -> Iterator[dict[str, Any]]:
    for i in range(n):
        pulled.append(i)
        yield {"type": "event", "identity": f"u{i}", "evtName": "E", "evtData": {}}


async def test_streams_and_retries_429_and_503_honouring_retry_after() -> None:
    pulled: list[int] = []
    answers = [429, 503, 200, 200, 200]
    seen: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        # Streaming: when a batch is sent, at most that batch has been drawn from the generator.
        sent = len(orjson.loads(request.content)["d"])
        seen.append(sent)
        assert len(pulled) <= sum(seen[:-1]) + sent + 1 or answers[0] != 200
        status = answers.pop(0) if answers else 200
        if status != 200:
            return httpx.Response(status, headers={"Retry-After": "0"}, json={"status": "fail"})
        return httpx.Response(200, json={"status": "success", "processed": sent})

    summary = await upload_all(
        _records(250, pulled),
        url="http://tapwire.test",
        account="ACC",
        passcode="p" * 20,
        progress=False,
        transport=httpx.MockTransport(handle),
    )
    assert summary.records == summary.processed == 250
    assert summary.batches == 3 and summary.retries == 2
    assert "250 records in 3 batches" in summary.line()


async def test_a_refused_batch_stops_the_upload() -> None:
    def handle(_: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"status": "fail", "error": "bad passcode"})

    with pytest.raises(UploadFailed, match="HTTP 401"):
        await upload_all(
            _records(10, []),
            url="http://tapwire.test",
            account="ACC",
            passcode="p" * 20,
            progress=False,
            transport=httpx.MockTransport(handle),
        )

"""``tapwire export``'s client: follows the cursor protocol, retries 429/503 as the SDKs do, stops on a refusal,
and leaves only a ``.partial`` file behind when it stops."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import orjson
import pytest

from tapwire_services import export_client
from tapwire_services.export_client import ExportFailed, export_all


def _pages(statuses: list[int], seen: list[str]) -> httpx.MockTransport:
    """Three pages of two records behind cursors c1 -> c2 -> c3; ``statuses`` answer first, in turn."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.params}")
        if statuses:
            status = statuses.pop(0)
            if status != 200:
                return httpx.Response(
                    status, headers={"Retry-After": "0"}, json={"status": "fail", "error": "no"}
                )
        if request.method == "POST":
            assert orjson.loads(request.content) == {"event_name": "E", "from": 20260101, "to": 20260131}
            assert request.url.params["batch_size"] == "2"
            return httpx.Response(200, json={"status": "success", "cursor": "c1"})
        number = int(request.url.params["cursor"][1:])
        page = {"status": "success", "records": [{"n": 2 * number - 1}, {"n": 2 * number}]}
        if number < 3:
            page["next_cursor"] = f"c{number + 1}"
        return httpx.Response(200, json=page)

    return httpx.MockTransport(handle)


QUERY = {"event_name": "E", "from": 20260101, "to": 20260131}


async def test_pages_are_written_in_order_and_429_503_are_retried() -> None:
    out = io.BytesIO()
    seen: list[str] = []
    summary = await export_all(
        "events", QUERY, url="http://tapwire.test", account="ACC", passcode="p" * 20, out=out,
        batch_size=2, progress=False, transport=_pages([429, 200, 503], seen),
    )  # fmt: skip
    assert [orjson.loads(line)["n"] for line in out.getvalue().splitlines()] == [1, 2, 3, 4, 5, 6]
    assert summary.records == 6 and summary.pages == 3 and summary.retries == 2
    assert len(seen) == 6  # POST twice, c1 twice, c2, c3
    assert summary.line().startswith("exported 6 events in 3 pages to standard output (2 retries)")


async def test_a_refusal_stops_the_export_with_the_servers_message() -> None:
    with pytest.raises(ExportFailed, match="HTTP 401: no"):
        await export_all(
            "profiles", QUERY, url="http://tapwire.test", account="ACC", passcode="p" * 20, out=io.BytesIO(),
            progress=False, transport=_pages([401], []),
        )  # fmt: skip


def test_a_file_appears_only_when_the_last_page_arrived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "events.jsonl"
    original = export_all

    async def failing_on_page_two(*args: object, **kwargs: object) -> export_client.ExportSummary:
        return await original(*args, **kwargs, transport=_pages([200, 200, 400], []))  # type: ignore[arg-type]

    monkeypatch.setattr(export_client, "export_all", failing_on_page_two)
    with pytest.raises(ExportFailed):
        export_client.export_to(
            "events", QUERY, out_path=str(target), url="http://tapwire.test", account="ACC",
            passcode="p" * 20, batch_size=2, progress=False,
        )  # fmt: skip
    assert not target.exists()
    assert [
        orjson.loads(line)["n"] for line in (tmp_path / "events.jsonl.partial").read_bytes().splitlines()
    ] == [1, 2]

    async def complete(*args: object, **kwargs: object) -> export_client.ExportSummary:
        return await original(*args, **kwargs, transport=_pages([], []))  # type: ignore[arg-type]

    monkeypatch.setattr(export_client, "export_all", complete)
    summary = export_client.export_to(
        "events", QUERY, out_path=str(target), url="http://tapwire.test", account="ACC",
        passcode="p" * 20, batch_size=2, progress=False,
    )  # fmt: skip
    assert summary.destination == str(target) and len(target.read_bytes().splitlines()) == 6
    assert not (tmp_path / "events.jsonl.partial").exists()

"""The command-line clients' retries: when each kind of failure is retried, how long each wait is, and what is
raised when the attempts run out."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tapwire_services.sdk_retries import request_with_retries


class Refused(Exception):
    pass


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return slept


async def _request(answers: list[httpx.Response | Exception], *, max_attempts: int = 8) -> tuple[int, int]:
    """The final status and the number of retries, against a server that gives ``answers`` in turn."""
    retries = 0

    def handle(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def retried() -> None:
        nonlocal retries
        retries += 1

    async with httpx.AsyncClient(
        base_url="http://tapwire.test", transport=httpx.MockTransport(handle)
    ) as client:
        response = await request_with_retries(
            client,
            "POST",
            "/1/upload",
            max_attempts=max_attempts,
            on_retry=retried,
            refused=Refused,
            describe=lambda r: r.text,
            content=b"{}",
        )
    return response.status_code, retries


async def test_connection_failures_back_off_doubling_to_30_s(waits: list[float]) -> None:
    failures: list[httpx.Response | Exception] = [httpx.ConnectError("refused")] * 7
    assert await _request([*failures, httpx.Response(200)]) == (200, 7)
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


async def test_429_and_503_wait_their_retry_after_at_most_60_s(waits: list[float]) -> None:
    answers: list[httpx.Response | Exception] = [
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(503, headers={"Retry-After": "600"}),
        httpx.Response(503, headers={"Retry-After": "soon"}),
        httpx.Response(200),
    ]
    assert await _request(answers) == (200, 3)
    # A Retry-After shorter than the back-off waits the back-off; one that does not parse counts as none.
    assert waits == [3.0, 60.0, 30.0]


async def test_other_statuses_are_final(waits: list[float]) -> None:
    with pytest.raises(Refused, match="HTTP 400: bad records"):
        await _request([httpx.Response(400, text="bad records")])
    assert waits == []


async def test_attempts_run_out_on_a_status_or_an_unreachable_server(waits: list[float]) -> None:
    with pytest.raises(Refused, match="HTTP 503: busy"):
        await _request([httpx.Response(503, text="busy")] * 3, max_attempts=3)
    with pytest.raises(Refused, match="the server was unreachable 2 times: ConnectError"):
        await _request([httpx.ConnectError("refused")] * 2, max_attempts=2)

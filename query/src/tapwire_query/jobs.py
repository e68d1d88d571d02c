"""Long-running counts: answer synchronously when fast, otherwise hand out a ``req_id`` to poll.

CleverTap's count endpoints reply ``{"status":"partial","req_id":N}`` when a query is still running; the
client polls ``?req_id=N`` until ``success``. Jobs live in this process (the instance that started a job
answers its polls; put query instances behind sticky routing, or give clients time to finish
synchronously). A finished job's result is kept for ``keep_s`` seconds after it completes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class _Job:
    account_id: str
    task: asyncio.Task[Any]
    done_at: float | None = None


@dataclass(frozen=True)
class JobState:
    """``running`` (poll again), or ``done`` with ``value``, or ``failed`` with ``error``."""

    status: Literal["running", "done", "failed"]
    req_id: int
    value: Any = None
    error: BaseException | None = None


class TooManyJobs(Exception):
    """The account already has ``max_running`` queries running in the background."""


@dataclass
class QueryJobs:
    """``max_running`` bounds each account's unfinished jobs: a request that went ``partial`` has released
    its concurrency slot, so without this bound a client could pile up background queries."""

    keep_s: float = 600.0
    max_running: int = 3
    _jobs: dict[int, _Job] = field(default_factory=dict)

    async def run(self, account_id: str, work: Callable[[], Awaitable[Any]], *, wait_s: float) -> JobState:
        """Start ``work``; its state after at most ``wait_s`` seconds. Never raises what ``work`` raises:
        a failure is returned as ``failed``. Raises ``TooManyJobs`` before starting anything when the
        account is at its limit."""
        self._expire()
        running = sum(1 for j in self._jobs.values() if j.account_id == account_id and not j.task.done())
        if running >= self.max_running:
            raise TooManyJobs(account_id)
        req_id = secrets.randbits(62) | 1
        task = asyncio.ensure_future(work())
        job = _Job(account_id, task)
        self._jobs[req_id] = job
        task.add_done_callback(lambda _: setattr(job, "done_at", time.monotonic()))
        await asyncio.wait([task], timeout=max(wait_s, 0.0))
        return self._state(req_id, job)

    def poll(self, account_id: str, req_id: int) -> JobState | None:
        """The job's state, or None when no job of this account has that id (unknown or expired)."""
        self._expire()
        job = self._jobs.get(req_id)
        if job is None or job.account_id != account_id:
            return None
        return self._state(req_id, job)

    async def close(self) -> None:
        """Cancel unfinished jobs (at shutdown) and forget every job."""
        tasks = [job.task for job in self._jobs.values() if not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()

    def _state(self, req_id: int, job: _Job) -> JobState:
        if not job.task.done():
            return JobState("running", req_id)
        if job.task.cancelled():
            return JobState("failed", req_id, error=asyncio.CancelledError())
        error = job.task.exception()
        if error is not None:
            return JobState("failed", req_id, error=error)
        return JobState("done", req_id, value=job.task.result())

    def _expire(self) -> None:
        now = time.monotonic()
        for req_id in [
            r for r, j in self._jobs.items() if j.done_at is not None and now - j.done_at > self.keep_s
        ]:
            del self._jobs[req_id]

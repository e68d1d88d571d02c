"""Long-running counts: answer synchronously when fast, otherwise hand out a ``req_id`` any replica answers.

CleverTap's count endpoints reply ``{"status":"partial","req_id":N}`` when a query is still running; the
client polls ``?req_id=N`` until ``success``. The process that took the request runs the job; what pollers
need lives in the control store (``job_store``), so a poll may reach any replica:

- a job that finishes within the request's wait is answered at once and never stored;
- otherwise a ``running`` row is written before ``partial`` is answered, and the owner renews its lease every
  ``RENEW_S`` while the job runs: when a replica dies, its jobs become unknown (404) within ``LEASE_S``;
- the outcome replaces it and is kept ``keep_s``: the answer's fields (at most ``MAX_VALUE_BYTES`` of JSON; a
  larger one is kept as an error saying so), or the error as clients see it (``errors.api_error``).

Expired rows, and an account's finished jobs beyond ``MAX_KEPT``, are deleted as jobs are stored.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from tapwire_core.control.store import ControlStore
from tapwire_core.http.errors import ApiError
from tapwire_query.errors import api_error
from tapwire_query.job_store import JobStore, StoredError, StoredJob

log = logging.getLogger(__name__)

LEASE_S: Final = 30.0
RENEW_S: Final = 10.0
MAX_VALUE_BYTES: Final = 1024 * 1024
MAX_KEPT: Final = 100


@dataclass(frozen=True)
class JobState:
    """``running`` (poll again), or ``done`` with ``value``, or ``failed`` with ``error``."""

    status: Literal["running", "done", "failed"]
    req_id: int
    value: Any = None
    error: BaseException | None = None


class TooManyJobs(Exception):
    """The account already has ``max_running`` queries running in the background in this process."""


class QueryJobs:
    """``max_running`` bounds each account's unfinished jobs per process: a request that went ``partial`` has
    released its concurrency slot, so without this bound a client could pile up background queries.
    ``clock`` gives epoch seconds (the stored expiry times are compared across processes)."""

    def __init__(
        self,
        store: ControlStore,
        *,
        keep_s: float = 600.0,
        max_running: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = JobStore(store)
        self._keep_s = keep_s
        self._max_running = max_running
        self._clock = clock
        # This process's unfinished jobs: req_id -> (account, task); and the tasks recording them.
        self._running: dict[int, tuple[str, asyncio.Task[Any]]] = {}
        self._recorders: set[asyncio.Task[None]] = set()

    async def run(self, account_id: str, work: Callable[[], Awaitable[Any]], *, wait_s: float) -> JobState:
        """Start ``work`` (its value must be JSON); its state after at most ``wait_s`` seconds. Never raises what ``work`` raises: a
        failure is returned as ``failed``. Raises ``TooManyJobs`` before starting anything when the account
        is at its limit, and the control store's error when a job that goes on cannot be recorded (the job is
        then cancelled). Cancelling the caller while it waits (the client went away before learning the
        ``req_id``) cancels the job."""
        if sum(1 for owner, _ in self._running.values() if owner == account_id) >= self._max_running:
            raise TooManyJobs(account_id)
        req_id = secrets.randbits(62) | 1
        task: asyncio.Task[Any] = asyncio.ensure_future(work())
        self._running[req_id] = (account_id, task)
        try:
            await asyncio.wait([task], timeout=max(wait_s, 0.0))
            if task.done():
                self._running.pop(req_id, None)
                return _state(req_id, task)
            await self._table.start(req_id, account_id=account_id, expires_s=self._clock() + LEASE_S)
        except BaseException:
            task.cancel()
            self._running.pop(req_id, None)
            raise
        recorder = asyncio.ensure_future(self._record(req_id, account_id, task))
        self._recorders.add(recorder)
        recorder.add_done_callback(self._recorders.discard)
        return JobState("running", req_id)

    async def poll(self, account_id: str, req_id: int) -> JobState | None:
        """The job's state, or None when no job of this account has that id (unknown, expired, or its owner
        stopped). Raises the control store's error when it is unreachable."""
        stored = await self._table.get(req_id, account_id=account_id, now_s=self._clock())
        if stored is None:
            return None
        if stored.status == "running":
            return JobState("running", req_id)
        if stored.status == "done":
            return JobState("done", req_id, value=stored.value)
        error = stored.error or StoredError(500, "query failed", 500)
        return JobState(
            "failed",
            req_id,
            error=ApiError(error.status, error.message, code=error.code, retry_after=error.retry_after),
        )

    async def close(self) -> None:
        """Cancel this process's unfinished jobs (at shutdown) and forget them, so polls answer 404 at once
        instead of ``partial`` until their lease ends."""
        running = list(self._running.items())
        for _, (_, task) in running:
            task.cancel()
        for recorder in list(self._recorders):
            recorder.cancel()
        await asyncio.gather(*(task for _, (_, task) in running), *self._recorders, return_exceptions=True)
        self._running.clear()
        try:
            await self._table.forget([req_id for req_id, _ in running])
        except Exception:
            log.exception("could not forget the count jobs of this process; they expire with their lease")

    async def _record(self, req_id: int, account_id: str, task: asyncio.Task[Any]) -> None:
        """Renew the job's lease while it runs, then store its outcome. A control store failure is logged:
        the lease then lapses and pollers learn the job is gone (404) instead of waiting for ever."""
        try:
            while True:
                await asyncio.wait([task], timeout=RENEW_S)
                if task.done():
                    break
                await self._table.renew(req_id, expires_s=self._clock() + LEASE_S)
            now = self._clock()
            await self._table.finish(req_id, _outcome(_state(req_id, task)), expires_s=now + self._keep_s)
            await self._table.trim(account_id=account_id, keep=MAX_KEPT, now_s=now)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not record a count job", extra={"req_id": req_id})
        finally:
            self._running.pop(req_id, None)


def _state(req_id: int, task: asyncio.Task[Any]) -> JobState:
    if task.cancelled():
        return JobState("failed", req_id, error=asyncio.CancelledError())
    error = task.exception()
    if error is not None:
        return JobState("failed", req_id, error=error)
    return JobState("done", req_id, value=task.result())


def _outcome(state: JobState) -> StoredJob:
    """What pollers are told: the value when it fits, else the error as clients see it."""
    if state.status == "done":
        size = len(orjson.dumps(state.value))
        if size <= MAX_VALUE_BYTES:
            return StoredJob("done", value=state.value)
        failure: ApiError = ApiError(
            422,
            f"The answer is too large to keep for polling ({size} bytes, at most {MAX_VALUE_BYTES}): "
            "ask for fewer groups or fewer values",
        )
    else:
        failure = api_error(state.error or RuntimeError("the job failed without an error"))
    return StoredJob(
        "failed", error=StoredError(failure.status, failure.error, failure.code, failure.retry_after)
    )

"""Counts and reports: ``/1/counts/{events,profiles,top,trends}.json`` and ``/1/now.json``.

Each answers ``{"status":"success",…}`` when the query finishes within ``query_sync_wait_s``; otherwise
``{"status":"partial","req_id":N}``, and ``GET`` (or ``POST``) ``?req_id=N`` returns the outcome once ready.
The body is compiled off the event loop into a ``Report`` (``reports``), which a job runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.errors import ApiError, error_response, json_response
from tapwire_query import reports
from tapwire_query.cql import compile_active_users
from tapwire_query.cql.off_loop import off_loop
from tapwire_query.errors import api_error
from tapwire_query.execution import now_ms, options_for, run
from tapwire_query.http_state import QueryState, Slot, State, json_body
from tapwire_query.jobs import JobState, TooManyJobs
from tapwire_query.query_route import QueryRoute

router = APIRouter(dependencies=[Slot], route_class=QueryRoute)

# Compiles a request body into the report an endpoint runs (one of the ``reports.*_report`` functions).
Planner = Callable[..., reports.Report]
ACTIVE_WINDOW_MS = 5 * 60 * 1000


def _job_response(job: JobState) -> Response:
    if job.status == "running":
        return json_response({"status": "partial", "req_id": job.req_id})
    if job.status == "failed":
        error = api_error(job.error) if job.error is not None else ApiError(500, "query failed")
        return error_response(error.status, error.error, code=error.code, retry_after=error.retry_after)
    return json_response({"status": "success", **job.value})


async def _counted(
    request: Request, account_id: str, context: Context, state: QueryState, plan: Planner
) -> Response:
    """A poll (``?req_id=``) answers that job's state; otherwise the body is compiled with ``plan`` and run
    as a job, answered when done within the sync wait or as ``partial``."""
    raw_req_id = request.query_params.get("req_id")
    if raw_req_id is not None:
        return await _poll(state, account_id, raw_req_id)
    body = await json_body(request)
    report = await off_loop(plan, body, account_id=account_id, options=options_for(context.settings))
    try:
        job = await state.jobs.run(
            account_id,
            partial(reports.run_report, state.warehouse, report),
            wait_s=context.settings.query_sync_wait_s,
        )
    except TooManyJobs as exc:
        raise ApiError(
            429, "Too many queries still running for this account; poll their req_id first", retry_after=5
        ) from exc
    return _job_response(job)


async def _poll(state: QueryState, account_id: str, raw: str) -> Response:
    try:
        req_id = int(raw)
    except ValueError as exc:
        raise ApiError(400, "req_id must be an integer") from exc
    if not 0 < req_id < 2**63:  # no job has such an id, and the stores' integers stop at 2**63 - 1
        raise ApiError(404, "req_id is unknown or has expired")
    job = await state.jobs.poll(account_id, req_id)
    if job is None:
        raise ApiError(404, "req_id is unknown or has expired")
    return _job_response(job)


@router.get("/1/counts/events.json")
@router.post("/1/counts/events.json")
async def count_events(
    request: Request, account: PasscodeAccount, context: Context, state: State
) -> Response:
    return await _counted(request, account.id, context, state, reports.event_count_report)


@router.get("/1/counts/profiles.json")
@router.post("/1/counts/profiles.json")
async def count_profiles(
    request: Request, account: PasscodeAccount, context: Context, state: State
) -> Response:
    return await _counted(request, account.id, context, state, reports.profile_count_report)


@router.get("/1/counts/top.json")
@router.post("/1/counts/top.json")
async def top_values(request: Request, account: PasscodeAccount, context: Context, state: State) -> Response:
    return await _counted(request, account.id, context, state, reports.top_report)


@router.get("/1/counts/trends.json")
@router.post("/1/counts/trends.json")
async def trends(request: Request, account: PasscodeAccount, context: Context, state: State) -> Response:
    return await _counted(request, account.id, context, state, reports.trends_report)


@router.post("/1/now.json")
async def active_now(request: Request, account: PasscodeAccount, context: Context, state: State) -> Response:
    """Users with an event in the last five minutes; ``{"user_type": true}`` splits new from returning."""
    body = await json_body(request, empty={})
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object")
    split = bool(body.get("user_type"))
    now = now_ms()
    since = now - ACTIVE_WINDOW_MS
    compiled = await off_loop(
        compile_active_users,
        account_id=account.id,
        options=options_for(context.settings),
        since_ms=since,
        until_ms=now,
        new_since_ms=since,
    )
    rows = await run(state.warehouse, compiled)
    count = int(rows[0]["n"])
    result: dict[str, Any] = {"status": "success", "count": count}
    if split:
        new = int(rows[0]["new"])
        result["user_type"] = {"new": new, "returning": count - new}
    return json_response(result)

"""Counts and reports: ``/1/counts/{events,profiles,top,trends}.json`` and ``/1/now.json``.

Each answers ``{"status":"success",…}`` when the query finishes within ``query_sync_wait_s``; otherwise
``{"status":"partial","req_id":N}``, and ``GET`` (or ``POST``) ``?req_id=N`` returns the outcome once ready.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field, field_validator
from starlette.responses import Response

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.errors import ApiError, error_response, json_response
from tapwire_core.warehouse import Warehouse
from tapwire_query.cql import (
    CqlError,
    CqlQuery,
    compile_event_count,
    compile_top,
    compile_trends,
    compile_user_count,
    parse_query,
)
from tapwire_query.cql.ast import Name, StrictModel
from tapwire_query.cql.identity import aliases_clause, canonical
from tapwire_query.cql.parse import parse_as
from tapwire_query.cql.sql import Compiled
from tapwire_query.execution import client_error, now_ms, options_for, run
from tapwire_query.http_state import QueryState, Slot, State, json_body
from tapwire_query.jobs import JobState, TooManyJobs

router = APIRouter(dependencies=[Slot])

Work = Callable[[], Awaitable[dict[str, Any]]]
_RESERVED = frozenset({"status", "req_id", "error", "message", "code"})
ACTIVE_WINDOW_MS = 5 * 60 * 1000


def _job_response(job: JobState) -> Response:
    if job.status == "running":
        return json_response({"status": "partial", "req_id": job.req_id})
    if job.status == "failed":
        error = job.error
        if isinstance(error, ApiError):
            return error_response(error.status, error.error, code=error.code, retry_after=error.retry_after)
        return error_response(500, "query failed")
    return json_response({"status": "success", **job.value})


async def _answer(state: QueryState, account_id: str, context: Context, work: Work) -> Response:
    try:
        job = await state.jobs.run(account_id, work, wait_s=context.settings.query_sync_wait_s)
    except TooManyJobs as exc:
        raise ApiError(
            429, "Too many queries still running for this account; poll their req_id first", retry_after=5
        ) from exc
    return _job_response(job)


def _poll(state: QueryState, account_id: str, raw: str) -> Response:
    try:
        req_id = int(raw)
    except ValueError as exc:
        raise ApiError(400, "req_id must be an integer") from exc
    job = state.jobs.poll(account_id, req_id)
    if job is None:
        raise ApiError(404, "req_id is unknown or has expired")
    return _job_response(job)


def _compiling(compile_: Callable[[], Any]) -> Any:
    try:
        return compile_()
    except CqlError as exc:
        raise client_error(exc) from exc


def _per_group(
    warehouse: Warehouse, compiled: dict[str, Compiled], entry: Callable[[dict[str, Any]], tuple[str, Any]]
) -> Work:
    """The work of a grouped request (top values, trends): each group's statement in turn, its rows made
    into that group's ``{key: value}`` by ``entry``."""

    async def work() -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, statement in compiled.items():
            result[key] = dict(entry(row) for row in await run(warehouse, statement))
        return result

    return work


async def _count(warehouse: Warehouse, compiled: Compiled) -> dict[str, Any]:
    rows = await run(warehouse, compiled)
    return {"count": int(rows[0]["n"]) if rows else 0}


def _query_of(body: Any) -> CqlQuery:
    try:
        return parse_query(body)
    except CqlError as exc:
        raise client_error(exc) from exc


async def _dispatch(
    request: Request, account_id: str, context: Context, state: QueryState, work_for: Callable[[Any], Work]
) -> Response:
    req_id = request.query_params.get("req_id")
    if req_id is not None:
        return _poll(state, account_id, req_id)
    return await _answer(state, account_id, context, work_for(await json_body(request)))


@router.get("/1/counts/events.json")
@router.post("/1/counts/events.json")
async def count_events(
    request: Request, account: PasscodeAccount, context: Context, state: State
) -> Response:
    def work_for(body: Any) -> Work:
        query = _query_of(body)
        if query.event_name is None or query.from_ is None:
            raise ApiError(400, "event_name, from and to are required")
        compiled = _compiling(
            lambda: compile_event_count(query, account_id=account.id, options=options_for(context.settings))
        )
        return lambda: _count(context.warehouse, compiled)

    return await _dispatch(request, account.id, context, state, work_for)


@router.get("/1/counts/profiles.json")
@router.post("/1/counts/profiles.json")
async def count_profiles(
    request: Request, account: PasscodeAccount, context: Context, state: State
) -> Response:
    def work_for(body: Any) -> Work:
        query = _query_of(body)
        compiled = compile_user_count(query, account_id=account.id, options=options_for(context.settings))
        return lambda: _count(context.warehouse, compiled)

    return await _dispatch(request, account.id, context, state, work_for)


class TopGroup(StrictModel):
    property_type: Literal["event_properties", "session_properties", "profile_fields"]
    name: Name
    top_n: int = Field(default=10, ge=1, le=1000)
    order: Literal["asc", "desc"] = "desc"


class TopRequest(CqlQuery):
    groups: dict[str, TopGroup] = Field(min_length=1, max_length=20)

    @field_validator("groups")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _group_names(value)


def _group_names(groups: dict[str, Any]) -> dict[str, Any]:
    clash = sorted(_RESERVED & groups.keys())
    if clash:
        raise ValueError(f"group names may not be {', '.join(clash)}")
    return groups


@router.get("/1/counts/top.json")
@router.post("/1/counts/top.json")
async def top_values(request: Request, account: PasscodeAccount, context: Context, state: State) -> Response:
    def work_for(body: Any) -> Work:
        top: TopRequest = _compiling(lambda: parse_as(TopRequest, body))
        options = options_for(context.settings)
        compiled = {
            key: _compiling(
                partial(
                    compile_top,
                    top,
                    account_id=account.id,
                    options=options,
                    source=group.property_type,
                    name=group.name,
                    top_n=group.top_n,
                    descending=group.order == "desc",
                )
            )
            for key, group in top.groups.items()
        }
        return _per_group(context.warehouse, compiled, lambda row: (str(row["value"]), int(row["n"])))

    return await _dispatch(request, account.id, context, state, work_for)


class TrendGroup(StrictModel):
    trend_type: Literal["daily", "weekly", "monthly"]


class TrendsRequest(CqlQuery):
    groups: dict[str, TrendGroup] = Field(min_length=1, max_length=20)
    unique: bool = False
    sum_event_prop: Name | None = None

    @field_validator("groups")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _group_names(value)


@router.get("/1/counts/trends.json")
@router.post("/1/counts/trends.json")
async def trends(request: Request, account: PasscodeAccount, context: Context, state: State) -> Response:
    def work_for(body: Any) -> Work:
        trend: TrendsRequest = _compiling(lambda: parse_as(TrendsRequest, body))
        options = options_for(context.settings)
        compiled = {
            key: _compiling(
                partial(
                    compile_trends,
                    trend,
                    account_id=account.id,
                    options=options,
                    trend=group.trend_type,
                    unique=trend.unique,
                    sum_property=trend.sum_event_prop,
                )
            )
            for key, group in trend.groups.items()
        }
        return _per_group(
            context.warehouse, compiled, lambda row: (row["period"].strftime("%Y%m%d"), _number(row["value"]))
        )

    return await _dispatch(request, account.id, context, state, work_for)


def _number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


@router.post("/1/now.json")
async def active_now(request: Request, account: PasscodeAccount, context: Context) -> Response:
    """Users with an event in the last five minutes; ``{"user_type": true}`` splits new from returning."""
    body = await json_body(request, empty={})
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object")
    split = bool(body.get("user_type"))
    now = now_ms()
    params = {"account": account.id, "since": now - ACTIVE_WINDOW_MS, "until": now}
    rows = await run(
        context.warehouse,
        Compiled(
            f"WITH {aliases_clause('{account:String}')} "
            f"SELECT count() AS n, countIf(first_ms >= {{since:Int64}}) AS new FROM ("
            f"SELECT {canonical()} AS uk FROM events WHERE account_id = {{account:String}} "
            "AND ts BETWEEN fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
            "AND fromUnixTimestamp64Milli({until:Int64}, 'UTC') GROUP BY uk) AS active "
            f"LEFT JOIN (SELECT {canonical()} AS uk, toUnixTimestamp64Milli(min(first_seen)) AS first_ms "
            "FROM profiles WHERE account_id = {account:String} GROUP BY uk) AS seen USING (uk)",
            params,
        ),
    )
    count = int(rows[0]["n"])
    result: dict[str, Any] = {"status": "success", "count": count}
    if split:
        new = int(rows[0]["new"])
        result["user_type"] = {"new": new, "returning": count - new}
    return json_response(result)

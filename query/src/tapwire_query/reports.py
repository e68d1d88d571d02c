"""What the count and report endpoints compute: statements compiled from a request body, and how their rows
become the answer.

A ``Report`` is data — which statements to run and how to read their rows — so it can be compiled off the
event loop, handed to a background job, and run by ``run_report``. The ``*_report`` functions are pure and
CPU-bound (run them through ``off_loop``); they raise ``CqlError`` for an invalid query and ``ApiError`` 400
when a base event the endpoint needs is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from tapwire_core.http.errors import ApiError
from tapwire_core.warehouse import Warehouse
from tapwire_query.cql import (
    Compiled,
    CompileOptions,
    CqlQuery,
    compile_event_count,
    compile_top,
    compile_trends,
    compile_user_count,
    parse_query,
)
from tapwire_query.cql.ast import Name, StrictModel
from tapwire_query.cql.parse import parse_as
from tapwire_query.execution import run

ReportKind = Literal["count", "top", "trends"]
_RESERVED = frozenset({"status", "req_id", "error", "message", "code"})


@dataclass(frozen=True)
class Report:
    """``count``: one statement (key ``""``) answering ``n``. ``top`` / ``trends``: one statement per group
    name, answering ``value, n`` / ``period, value`` rows."""

    kind: ReportKind
    statements: dict[str, Compiled]


class TopGroup(StrictModel):
    property_type: Literal["event_properties", "session_properties", "profile_fields"]
    name: Name
    top_n: int = Field(default=10, ge=1, le=1000)
    order: Literal["asc", "desc"] = "desc"


def _group_names(groups: dict[str, Any]) -> dict[str, Any]:
    clash = sorted(_RESERVED & groups.keys())
    if clash:
        raise ValueError(f"group names may not be {', '.join(clash)}")
    return groups


class TopRequest(CqlQuery):
    groups: dict[str, TopGroup] = Field(min_length=1, max_length=20)

    @field_validator("groups")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _group_names(value)


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


def event_count_report(body: Any, *, account_id: str, options: CompileOptions) -> Report:
    """``/1/counts/events.json``: base events matching the query (the base event is required)."""
    query = parse_query(body)
    if query.event_name is None or query.from_ is None:
        raise ApiError(400, "event_name, from and to are required")
    return Report("count", {"": compile_event_count(query, account_id=account_id, options=options)})


def profile_count_report(body: Any, *, account_id: str, options: CompileOptions) -> Report:
    """``/1/counts/profiles.json``: users matching the query."""
    query = parse_query(body)
    return Report("count", {"": compile_user_count(query, account_id=account_id, options=options)})


def top_report(body: Any, *, account_id: str, options: CompileOptions) -> Report:
    """``/1/counts/top.json``: per group, the most (or least) frequent values of one property."""
    top = parse_as(TopRequest, body)
    statements = {
        key: compile_top(
            top,
            account_id=account_id,
            options=options,
            source=group.property_type,
            name=group.name,
            top_n=group.top_n,
            descending=group.order == "desc",
        )
        for key, group in top.groups.items()
    }
    return Report("top", statements)


def trends_report(body: Any, *, account_id: str, options: CompileOptions) -> Report:
    """``/1/counts/trends.json``: per group, a daily, weekly or monthly series."""
    trend = parse_as(TrendsRequest, body)
    statements = {
        key: compile_trends(
            trend,
            account_id=account_id,
            options=options,
            trend=group.trend_type,
            unique=trend.unique,
            sum_property=trend.sum_event_prop,
        )
        for key, group in trend.groups.items()
    }
    return Report("trends", statements)


async def run_report(warehouse: Warehouse, report: Report) -> dict[str, Any]:
    """The answer's fields (without ``status``): ``{"count": n}``, or per group ``{value: n}`` (top) or
    ``{YYYYMMDD: value}`` (trends). Runs the statements in turn; raises the warehouse's errors."""
    if report.kind == "count":
        rows = await run(warehouse, report.statements[""])
        return {"count": int(rows[0]["n"]) if rows else 0}
    result: dict[str, Any] = {}
    for key, statement in report.statements.items():
        rows = await run(warehouse, statement)
        if report.kind == "top":
            result[key] = {str(row["value"]): int(row["n"]) for row in rows}
        else:
            result[key] = {row["period"].strftime("%Y%m%d"): _number(row["value"]) for row in rows}
    return result


def _number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number

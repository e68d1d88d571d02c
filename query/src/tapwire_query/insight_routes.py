"""Reads the console's pages need that CleverTap's API has no call for: daily activity, the discovered event
schema, the latest events, finding a profile, a profile's timeline. Plain JSON for any client.

Every statement is fixed text with bound parameters; the account condition is in each one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_model
from tapwire_core.http.errors import ApiError, json_response
from tapwire_core.warehouse import Warehouse
from tapwire_query.cql.identity import ALIASES, aliases_clause, canonical
from tapwire_query.cql.sql import Compiled
from tapwire_query.execution import now_ms, run
from tapwire_query.http_state import Slot

router = APIRouter(prefix="/query/v1", dependencies=[Slot])

MAX_DAYS = 92
# Funnel and retention bodies, read after the credentials are checked.
_LIMITS = BodyLimits(max_bytes=16 * 1024, max_inflated=16 * 1024, max_values=200, max_depth=4)
_DAY = "%Y%m%d"
# The discovered schema changes slowly and costs a scan of every event's property names: one answer per
# account and window is reused for this long.
SCHEMA_TTL_S = 60.0
_schemas: dict[tuple[str, dt.date, dt.date], tuple[float, dict[str, Any]]] = {}
# Days that have ended change only through late events and erasures, yet the overview read all 30 of them on
# every load and on every refresh of its "last five minutes" card. Their figures are reused for this long; today
# (and any later day of the window) is always read afresh.
CLOSED_DAYS_TTL_S = 300.0
# Event names kept per window for its top events (their counts are summed with today's).
_NAMES_KEPT = 1000
_closed_days: dict[tuple[str, dt.date, dt.date], tuple[float, list[dict[str, Any]], dict[str, int]]] = {}


def _day(value: str | None, default: dt.date) -> dt.date:
    if value is None:
        return default
    try:
        return dt.datetime.strptime(value, _DAY).date()
    except ValueError as exc:
        raise ApiError(400, f"dates are YYYYMMDD, got {value!r}") from exc


def _window(from_: str | None, to: str | None, *, default_days: int) -> tuple[dt.date, dt.date]:
    today = dt.datetime.now(dt.UTC).date()
    end = _day(to, today)
    start = _day(from_, end - dt.timedelta(days=default_days - 1))
    if start > end:
        raise ApiError(422, "from: must not be after to")
    if (end - start).days + 1 > MAX_DAYS:
        raise ApiError(422, f"from: at most {MAX_DAYS} days per request")
    return start, end


def _bounds(start: dt.date, end: dt.date) -> dict[str, Any]:
    return {"since": start.isoformat(), "until": (end + dt.timedelta(days=1)).isoformat()}


# A person's canonical key; an account without merged identities skips the alias lookup on every row (``if``
# evaluates only the branch its constant condition picks).
_PERSON = f"if(empty({ALIASES}.1), user_key, {canonical()})"
_IN_WINDOW = (
    "account_id = {account:String} AND ts >= toDateTime64({since:String}, 3, 'UTC') "
    "AND ts < toDateTime64({until:String}, 3, 'UTC')"
)


async def _days_and_names(
    warehouse: Warehouse, account_id: str, start: dt.date, end: dt.date
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Events and people per day from ``start`` to ``end``, and the events of each name (the most frequent
    ``_NAMES_KEPT``)."""
    params = {"account": account_id, **_bounds(start, end)}
    daily, names = await asyncio.gather(
        run(
            warehouse,
            Compiled(
                f"WITH {aliases_clause('{account:String}')} SELECT toDate(ts) AS day, count() AS events, "
                f"uniq({_PERSON}) AS users FROM events WHERE {_IN_WINDOW} GROUP BY day ORDER BY day",
                params,
            ),
        ),
        run(
            warehouse,
            Compiled(
                f"SELECT name, count() AS events FROM events WHERE {_IN_WINDOW} "
                "GROUP BY name ORDER BY events DESC, name LIMIT {kept:UInt32}",
                {**params, "kept": _NAMES_KEPT},
            ),
        ),
    )
    return daily, {str(row["name"]): int(row["events"]) for row in names}


@router.get("/activity")
async def activity(
    *,
    account: PasscodeAccount,
    context: Context,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    top: Annotated[int, Query(ge=1, le=50)] = 8,
) -> Response:
    """Events and people per UTC day of the window (default: the 30 days ending today), the top events of the
    window, and the last five minutes. The daily people are approximate (ClickHouse ``uniq``: exact for small
    days, within about 1 % for large ones; ``users_approximate`` says so): counting them exactly means holding
    every person's key of every day in memory. Days before today may be up to ``CLOSED_DAYS_TTL_S`` old; today
    and the last five minutes (counted exactly) are live."""
    start, end = _window(from_, to, default_days=30)
    today = dt.datetime.now(dt.UTC).date()
    now = now_ms()
    recent_statement = Compiled(
        f"WITH {aliases_clause('{account:String}')} SELECT count() AS events, "
        f"uniqExact({canonical()}) AS users FROM events WHERE account_id = {{account:String}} "
        "AND ts >= fromUnixTimestamp64Milli({recent:Int64}, 'UTC') "
        "AND ts <= fromUnixTimestamp64Milli({now:Int64}, 'UTC')",
        {"account": account.id, "recent": now - 5 * 60 * 1000, "now": now},
    )
    closed_end = min(end, today - dt.timedelta(days=1))
    closed = _closed_days.get((account.id, start, closed_end)) if start <= closed_end else None
    if closed is not None and time.monotonic() - closed[0] >= CLOSED_DAYS_TTL_S:
        closed = None
    reads: list[Awaitable[Any]] = [run(context.warehouse, recent_statement)]
    if start <= closed_end and closed is None:
        reads.append(_days_and_names(context.warehouse, account.id, start, closed_end))
    if end >= today:
        reads.append(_days_and_names(context.warehouse, account.id, max(start, today), end))
    # Independent reads: a ClickHouse server answers them side by side.
    answers = await asyncio.gather(*reads)
    recent = answers[0]
    parts: list[tuple[list[dict[str, Any]], dict[str, int]]] = list(answers[1:])
    if start <= closed_end:
        if closed is None:
            if len(_closed_days) > 1000:
                _closed_days.clear()
            _closed_days[(account.id, start, closed_end)] = (time.monotonic(), *parts[0])
        else:
            parts.insert(0, (closed[1], closed[2]))
    daily = [row for rows, _ in parts for row in rows]
    by_name: dict[str, int] = {}
    for _, names in parts:
        for name, events in names.items():
            by_name[name] = by_name.get(name, 0) + events
    top_events = [
        {"name": name, "events": events}
        for name, events in sorted(by_name.items(), key=lambda item: (-item[1], item[0]))[:top]
    ]
    by_day = {row["day"]: row for row in daily}
    days = []
    for offset in range((end - start).days + 1):
        day = start + dt.timedelta(days=offset)
        row = by_day.get(day)
        days.append(
            {
                "date": day.strftime(_DAY),
                "events": int(row["events"]) if row else 0,
                "users": int(row["users"]) if row else 0,
            }
        )
    return json_response(
        {
            "status": "success",
            "from": start.strftime(_DAY),
            "to": end.strftime(_DAY),
            "days": days,
            "users_approximate": True,
            "top_events": top_events,
            "last_5_minutes": {"events": int(recent[0]["events"]), "users": int(recent[0]["users"])},
        }
    )


@router.get("/schema")
async def schema(
    *,
    account: PasscodeAccount,
    context: Context,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
) -> Response:
    """Event names seen in the window (default: 30 days) with volume and last time, and each one's properties
    with their types (string — booleans included — or number) and how many events carried them. Answers may be
    up to ``SCHEMA_TTL_S`` old."""
    start, end = _window(from_, to, default_days=30)
    key = (account.id, start, end)
    cached = _schemas.get(key)
    if cached is not None and time.monotonic() - cached[0] < SCHEMA_TTL_S:
        return json_response(cached[1])
    params = {"account": account.id, **_bounds(start, end)}
    names = await run(
        context.warehouse,
        Compiled(
            "SELECT name, count() AS events, toUnixTimestamp64Milli(max(ts)) AS last_ms "
            f"FROM events WHERE {_IN_WINDOW} GROUP BY name ORDER BY events DESC, name LIMIT 500",
            params,
        ),
    )
    properties = await run(
        context.warehouse,
        Compiled(
            "SELECT name, key, type, count() AS events FROM ("
            "SELECT name, arrayJoin(arrayConcat(arrayMap(k -> (k, 'string'), mapKeys(prop_strings)), "
            "arrayMap(k -> (k, 'number'), mapKeys(prop_numbers)))) AS prop, prop.1 AS key, prop.2 AS type "
            f"FROM events WHERE {_IN_WINDOW}) GROUP BY name, key, type ORDER BY name, events DESC, key LIMIT 20000",
            params,
        ),
    )
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in properties:
        grouped.setdefault(row["name"], []).append(
            {"name": row["key"], "type": row["type"], "events": int(row["events"])}
        )
    body = {
        "status": "success",
        "from": start.strftime(_DAY),
        "to": end.strftime(_DAY),
        "events": [
            {
                "name": row["name"],
                "events": int(row["events"]),
                "last_seen_ms": int(row["last_ms"]),
                "properties": grouped.get(row["name"], []),
            }
            for row in names
        ],
    }
    if len(_schemas) > 1000:
        _schemas.clear()
    _schemas[key] = (time.monotonic(), body)
    return json_response(body)


_EVENT_COLUMNS = "event_id, name, toUnixTimestamp64Milli(ts) AS ts_ms, user_key, identity, email, phone, source, properties"


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["event_id"],
        "name": row["name"],
        "ts_ms": int(row["ts_ms"]),
        "user_key": row["user_key"],
        "identity": row["identity"] or row["email"] or row["phone"] or "",
        "source": row["source"],
        "properties": row["properties"],
    }


@router.get("/events/latest")
async def latest_events(
    *,
    account: PasscodeAccount,
    context: Context,
    name: Annotated[str | None, Query(max_length=200)] = None,
    identity: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """The newest events (of the last 7 days), optionally of one event name and/or one identity (identity,
    email or phone, exactly)."""
    clauses = ["account_id = {account:String}", "ts >= now64(3, 'UTC') - INTERVAL 7 DAY"]
    params: dict[str, Any] = {"account": account.id, "limit": limit}
    if name:
        clauses.append("name = {name:String}")
        params["name"] = name
    if identity:
        clauses.append("(identity = {who:String} OR email = {who:String} OR phone = {who:String})")
        params["who"] = identity
    rows = await run(
        context.warehouse,
        Compiled(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)} "
            "ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt32}",
            params,
        ),
    )
    return json_response({"status": "success", "events": [_event(r) for r in rows]})


@router.get("/profiles/find")
async def find_profiles(
    *,
    account: PasscodeAccount,
    context: Context,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Profiles whose identity, email, phone or objectId is exactly ``q`` (emails case-insensitively)."""
    rows = await run(
        context.warehouse,
        Compiled(
            "SELECT user_key, any(identity) AS found_identity, any(email) AS found_email, "
            "any(phone) AS found_phone, toUnixTimestamp64Milli(max(last_seen)) AS last_ms FROM profiles WHERE account_id = {account:String} "
            "AND (identity = {q:String} OR lower(email) = lower({q:String}) OR phone = {q:String} "
            "OR object_id = {q:String}) GROUP BY user_key ORDER BY last_ms DESC LIMIT {limit:UInt32}",
            {"account": account.id, "q": q.strip(), "limit": limit},
        ),
    )
    return json_response(
        {
            "status": "success",
            "profiles": [
                {
                    "user_key": r["user_key"],
                    "identity": r["found_identity"] or "",
                    "email": r["found_email"] or "",
                    "phone": r["found_phone"] or "",
                    "last_seen_ms": int(r["last_ms"]),
                }
                for r in rows
            ],
        }
    )


def timeline_statement(*, account_id: str, user_key: str, before_ms: int, limit: int) -> Compiled:
    """The newest ``limit`` events before ``before_ms`` of the person ``user_key`` counts as.

    The person's keys (the merged-in aliases of the key's canonical key) are worked out once, in a subquery:
    ``user_key IN (subquery)`` is a set the server analyses the primary key with, where a
    ``has(<array expression>, user_key)`` condition made ClickHouse read every granule of the account. With the
    set, the server reads the person-ordered projection of ``events`` (migration 7), where the person's events
    are one range of a few granules; parts not yet given the projection are narrowed by the user-key bloom filter.
    """
    return Compiled(
        f"WITH {aliases_clause('{account:String}')}, "
        f"transform({{key:String}}, {ALIASES}.1, {ALIASES}.2, {{key:String}}) AS _person "
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE account_id = {{account:String}} AND user_key IN ("
        f"SELECT arrayJoin(arrayConcat([_person], arrayFilter((a, c) -> c = _person, {ALIASES}.1, {ALIASES}.2)))) "
        "AND ts < fromUnixTimestamp64Milli({before:Int64}, 'UTC') "
        "ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt32}",
        {"account": account_id, "key": user_key, "before": before_ms, "limit": limit},
    )


@router.get("/profiles/{user_key}/timeline")
async def timeline(
    *,
    user_key: str,
    account: PasscodeAccount,
    context: Context,
    before_ms: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """A person's events, newest first, across every key merged into them; ``next_before_ms`` pages on."""
    before = before_ms if before_ms is not None else now_ms() + 86_400_000
    rows = await run(
        context.warehouse,
        timeline_statement(account_id=account.id, user_key=user_key, before_ms=before, limit=limit),
    )
    events = [_event(r) for r in rows]
    return json_response(
        {
            "status": "success",
            "events": events,
            "next_before_ms": events[-1]["ts_ms"] if len(events) == limit else None,
        }
    )


class FunnelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=2, max_length=8)
    within_seconds: int = Field(default=86400, ge=1, le=90 * 86400)
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None


@router.post("/funnel")
async def funnel(*, request: Request, account: PasscodeAccount, context: Context) -> Response:
    """People reaching each step, in order, the last within ``within_seconds`` of the first (ClickHouse
    ``windowFunnel``, strictly increasing times), with each step's conversion from the first and the previous."""
    funnel_in = await read_model(request, FunnelIn, _LIMITS)
    start, end = _window(funnel_in.from_, funnel_in.to, default_days=30)
    params: dict[str, Any] = {
        "account": account.id,
        **_bounds(start, end),
        "window": funnel_in.within_seconds,
        "names": funnel_in.steps,
    }
    conditions = []
    for index, step in enumerate(funnel_in.steps):
        params[f"s{index}"] = step
        conditions.append(f"name = {{s{index}:String}}")
    rows = await run(
        context.warehouse,
        Compiled(
            f"WITH {aliases_clause('{account:String}')} SELECT level, count() AS people FROM ("
            f"SELECT {canonical()} AS person, windowFunnel({{window:UInt64}}, 'strict_increase')"
            f"(toDateTime(ts), {', '.join(conditions)}) AS level FROM events "
            f"WHERE {_IN_WINDOW} AND name IN {{names:Array(String)}} GROUP BY person) "
            "WHERE level > 0 GROUP BY level ORDER BY level",
            params,
        ),
    )
    at_level = {int(r["level"]): int(r["people"]) for r in rows}
    people = [
        sum(n for level, n in at_level.items() if level >= index)
        for index in range(1, len(funnel_in.steps) + 1)
    ]
    reached: list[dict[str, Any]] = []
    for index, name in enumerate(funnel_in.steps):
        previous = people[index - 1] if index else people[0]
        reached.append(
            {
                "step": index + 1,
                "event_name": name,
                "people": people[index],
                "from_first": round(people[index] / people[0], 4) if people[0] else 0.0,
                "from_previous": round(people[index] / previous, 4) if previous else 0.0,
            }
        )
    return json_response(
        {"status": "success", "from": start.strftime(_DAY), "to": end.strftime(_DAY), "steps": reached}
    )


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_event: str = Field(min_length=1, max_length=200)
    return_event: str = Field(min_length=1, max_length=200)
    period: Literal["day", "week"] = "day"
    periods: int = Field(default=7, ge=1, le=12)
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None


@router.post("/retention")
async def retention(*, request: Request, account: PasscodeAccount, context: Context) -> Response:
    """Cohorts of people by the day (or week) of their first ``first_event`` in the window; for each, how many did
    ``return_event`` 0, 1, … ``periods`` periods later."""
    retention_in = await read_model(request, RetentionIn, _LIMITS)
    start, end = _window(retention_in.from_, retention_in.to, default_days=30)
    unit = "toStartOfWeek(toDate(ts), 1)" if retention_in.period == "week" else "toDate(ts)"
    span = 7 if retention_in.period == "week" else 1
    params: dict[str, Any] = {
        "account": account.id,
        **_bounds(start, end),
        "first": retention_in.first_event,
        "returned": retention_in.return_event,
        "span": span,
        "periods": retention_in.periods,
        "horizon": (end + dt.timedelta(days=span * (retention_in.periods + 1))).isoformat(),
    }
    rows = await run(
        context.warehouse,
        Compiled(
            f"WITH {aliases_clause('{account:String}')} SELECT cohort, offset, uniqExact(person) AS people FROM ("
            f"SELECT {canonical()} AS person, min({unit}) AS cohort FROM events "
            f"WHERE {_IN_WINDOW} AND name = {{first:String}} GROUP BY person) AS firsts "
            f"INNER JOIN (SELECT {canonical()} AS person, {unit} AS period FROM events "
            "WHERE account_id = {account:String} AND name = {returned:String} "
            "AND ts >= toDateTime64({since:String}, 3, 'UTC') AND ts < toDateTime64({horizon:String}, 3, 'UTC') "
            "GROUP BY person, period) AS returns USING (person) "
            "ARRAY JOIN [intDiv(dateDiff('day', cohort, period), {span:UInt32})] AS offset "
            "WHERE offset >= 0 AND offset <= {periods:UInt32} GROUP BY cohort, offset ORDER BY cohort, offset",
            params,
        ),
    )
    sizes = await run(
        context.warehouse,
        Compiled(
            f"WITH {aliases_clause('{account:String}')} SELECT cohort, count() AS people FROM ("
            f"SELECT {canonical()} AS person, min({unit}) AS cohort FROM events "
            f"WHERE {_IN_WINDOW} AND name = {{first:String}} GROUP BY person) GROUP BY cohort ORDER BY cohort",
            {k: v for k, v in params.items() if k in ("account", "since", "until", "first")},
        ),
    )
    returned: dict[Any, dict[int, int]] = {}
    for row in rows:
        returned.setdefault(row["cohort"], {})[int(row["offset"])] = int(row["people"])
    cohorts = []
    for row in sizes:
        size = int(row["people"])
        counts = returned.get(row["cohort"], {})
        cohorts.append(
            {
                "cohort": row["cohort"].strftime(_DAY),
                "people": size,
                "returned": [counts.get(p, 0) for p in range(retention_in.periods + 1)],
                "rates": [
                    round(counts.get(p, 0) / size, 4) if size else 0.0
                    for p in range(retention_in.periods + 1)
                ],
            }
        )
    return json_response(
        {
            "status": "success",
            "period": retention_in.period,
            "from": start.strftime(_DAY),
            "to": end.strftime(_DAY),
            "cohorts": cohorts,
        }
    )


@router.get("/profiles/{user_key}/identity")
async def identity(*, user_key: str, account: PasscodeAccount, context: Context) -> Response:
    """The person ``user_key`` counts as: every user key merged into them, and their push devices (token kind,
    the token's last 8 characters, when it was last uploaded), newest first."""
    params = {"account": account.id, "key": user_key}
    person = f"transform({{key:String}}, {ALIASES}.1, {ALIASES}.2, {{key:String}})"
    keys, devices = await asyncio.gather(
        run(
            context.warehouse,
            Compiled(
                f"WITH {aliases_clause('{account:String}')} SELECT arrayDistinct(arrayConcat([{person}], "
                f"arrayFilter((a, c) -> c = {person}, {ALIASES}.1, {ALIASES}.2))) AS keys",
                params,
            ),
        ),
        run(
            context.warehouse,
            Compiled(
                f"WITH {aliases_clause('{account:String}')} SELECT "
                "lower(JSONExtractString(properties, 'type')) AS kind, "
                "right(JSONExtractString(properties, 'id'), 8) AS tail, "
                "toUnixTimestamp64Milli(max(ts)) AS last_ms FROM events "
                "WHERE account_id = {account:String} AND name = {token_event:String} "
                f"AND {canonical()} = {person} GROUP BY kind, tail ORDER BY last_ms DESC LIMIT 50",
                {**params, "token_event": "__push_token"},
            ),
        ),
    )
    return json_response(
        {
            "status": "success",
            "user_keys": list(keys[0]["keys"]) if keys else [user_key],
            "devices": [
                {"kind": d["kind"], "token_tail": d["tail"], "last_seen_ms": int(d["last_ms"])}
                for d in devices
            ],
        }
    )

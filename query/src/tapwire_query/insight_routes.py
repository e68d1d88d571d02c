"""Reads the console's pages need that CleverTap's API has no call for: daily activity, the discovered event
schema, the latest events, finding a profile, a profile's timeline. Plain JSON for any client.

Every statement is fixed text with bound parameters; the account condition is in each one.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.errors import ApiError, json_response
from tapwire_query.cql.identity import aliases_clause, canonical
from tapwire_query.cql.sql import Compiled
from tapwire_query.execution import now_ms, run
from tapwire_query.http_state import Slot

router = APIRouter(prefix="/query/v1", dependencies=[Slot])

MAX_DAYS = 92
_DAY = "%Y%m%d"


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


_IN_WINDOW = (
    "account_id = {account:String} AND ts >= toDateTime64({since:String}, 3, 'UTC') "
    "AND ts < toDateTime64({until:String}, 3, 'UTC')"
)


@router.get("/activity")
async def activity(
    *,
    account: PasscodeAccount,
    context: Context,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    top: Annotated[int, Query(ge=1, le=50)] = 8,
) -> Response:
    """Events and unique people per UTC day of the window (default: the 30 days ending today), the top events
    of the window, and the last five minutes."""
    start, end = _window(from_, to, default_days=30)
    params = {"account": account.id, **_bounds(start, end)}
    daily = await run(
        context.warehouse,
        Compiled(
            f"WITH {aliases_clause('{account:String}')} SELECT toDate(ts) AS day, count() AS events, "
            f"uniqExact({canonical()}) AS users FROM events WHERE {_IN_WINDOW} GROUP BY day ORDER BY day",
            params,
        ),
    )
    top_events = await run(
        context.warehouse,
        Compiled(
            f"SELECT name, count() AS events FROM events WHERE {_IN_WINDOW} "
            "GROUP BY name ORDER BY events DESC, name LIMIT {top:UInt32}",
            {**params, "top": top},
        ),
    )
    now = now_ms()
    recent = await run(
        context.warehouse,
        Compiled(
            f"WITH {aliases_clause('{account:String}')} SELECT count() AS events, uniqExact({canonical()}) AS users "
            "FROM events WHERE account_id = {account:String} "
            "AND ts >= fromUnixTimestamp64Milli({recent:Int64}, 'UTC') "
            "AND ts <= fromUnixTimestamp64Milli({now:Int64}, 'UTC')",
            {"account": account.id, "recent": now - 5 * 60 * 1000, "now": now},
        ),
    )
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
            "top_events": [{"name": r["name"], "events": int(r["events"])} for r in top_events],
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
    with their types (string — booleans included — or number) and how many events carried them."""
    start, end = _window(from_, to, default_days=30)
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
    return json_response(
        {
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
    )


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
        Compiled(
            f"WITH {aliases_clause('{account:String}')} SELECT {_EVENT_COLUMNS} FROM events "
            "WHERE account_id = {account:String} "
            f"AND {canonical()} = transform({{key:String}}, _aliases.1, _aliases.2, {{key:String}}) "
            "AND ts < fromUnixTimestamp64Milli({before:Int64}, 'UTC') "
            "ORDER BY ts DESC, event_id DESC LIMIT {limit:UInt32}",
            {"account": account.id, "key": user_key, "before": before, "limit": limit},
        ),
    )
    events = [_event(r) for r in rows]
    return json_response(
        {
            "status": "success",
            "events": events,
            "next_before_ms": events[-1]["ts_ms"] if len(events) == limit else None,
        }
    )

"""Paged exports behind cursors: events of a query, profiles (users) of a query, members of a saved segment.

Paging is stable while data arrives: the first call fixes a snapshot time and every page reads only events
received up to it, ordered by a unique key — (ts, event_id) for events, the canonical user key for users —
continuing strictly after the last key served. A page holds at most ``batch_size`` records; the last page
carries no next cursor.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import orjson

from tapwire_core.http.errors import ApiError
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_query.cql import (
    Compiled,
    CompileOptions,
    compile_event_name_known,
    compile_event_rows,
    compile_user_page,
    parse_query,
)
from tapwire_query.cql.off_loop import off_loop
from tapwire_query.cursors import CursorCodec, CursorKind, CursorState
from tapwire_query.execution import now_ms, options_for, run
from tapwire_query.profile_batch import profile_records

MAX_BATCH_SIZE: Final = 5000
DEFAULT_BATCH_SIZE: Final = 10


def batch_size_of(raw: str | None) -> int:
    """``batch_size`` from the URL: default 10, capped at 5000 (CleverTap's maximum); 400 when not a number."""
    if raw is None or raw == "":
        return DEFAULT_BATCH_SIZE
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, "batch_size must be a positive integer") from exc
    if value < 1:
        raise ApiError(400, "batch_size must be a positive integer")
    return min(value, MAX_BATCH_SIZE)


async def start(
    *,
    kind: CursorKind,
    body: Any,
    account_id: str,
    batch_size: int,
    flags: dict[str, bool],
    codec: CursorCodec,
    warehouse: Warehouse,
    settings: Settings,
) -> str:
    """Validate the query and return the first cursor. Raises ``CqlError`` for an invalid query; for events,
    ``ApiError`` 400 when the base event is missing or the account has never recorded that event name."""
    query = await off_loop(parse_query, body)
    if kind == "events":
        if query.event_name is None or query.from_ is None:
            raise ApiError(400, "event_name, from and to are required to download events")
        known = await off_loop(
            compile_event_name_known,
            account_id=account_id,
            options=options_for(settings),
            name=query.event_name,
        )
        if not await run(warehouse, known):
            raise ApiError(400, f"Event name {query.event_name!r} is not known for this account")
    state = CursorState(
        kind=kind,
        account_id=account_id,
        query=body,
        batch_size=batch_size,
        snapshot_ms=now_ms(),
        after=None,
        expires_at=codec.expiry(),
        flags=flags,
    )
    return codec.encode(state)


async def page(
    state: CursorState, *, codec: CursorCodec, warehouse: Warehouse, settings: Settings
) -> tuple[list[dict[str, Any]], str | None]:
    """The records after ``state.after`` and the cursor for the next page (None on the last page). Raises
    ``CqlError`` when the cursor's query no longer compiles, and the warehouse's errors."""
    compiled = await off_loop(_page_statement, state, options_for(settings, snapshot_ms=state.snapshot_ms))
    limit = state.batch_size
    if state.kind == "events":
        rows = await run(warehouse, compiled)
        more = len(rows) > limit
        rows = rows[:limit]
        records = await _event_records(warehouse, state, rows)
        last: list[Any] | None = [int(rows[-1]["ts_ms"]), str(rows[-1]["event_id"])] if rows else None
    else:
        keys = [str(row["uk"]) for row in await run(warehouse, compiled)]
        more = len(keys) > limit
        keys = keys[:limit]
        records = await _user_records(warehouse, state, keys)
        last = [keys[-1]] if keys else None
    if not more:
        return records, None
    following = dataclasses.replace(state, after=last, expires_at=codec.expiry())
    return records, codec.encode(following)


def _page_statement(state: CursorState, options: CompileOptions) -> Compiled:
    """The statement of the page after ``state.after`` (one row more than the page, to tell if more follow)."""
    query = parse_query(state.query)
    if state.kind == "events":
        after = (int(state.after[0]), str(state.after[1])) if state.after else None
        return compile_event_rows(
            query, account_id=state.account_id, options=options, after=after, limit=state.batch_size + 1
        )
    return compile_user_page(
        query,
        account_id=state.account_id,
        options=options,
        after=str(state.after[0]) if state.after else None,
        limit=state.batch_size + 1,
    )


async def _user_records(warehouse: Warehouse, state: CursorState, keys: list[str]) -> list[dict[str, Any]]:
    if state.kind == "members":
        found = await profile_records(
            warehouse, account_id=state.account_id, canonical=keys, profile=False, events=False
        )
        return [{"user_key": key, **_identifiers(found.get(key, {}))} for key in keys]
    found = await profile_records(
        warehouse,
        account_id=state.account_id,
        canonical=keys,
        profile=state.flags.get("profile", True),
        events=state.flags.get("events", True),
    )
    return [found.get(key, {}) | {"user_key": key} for key in keys]


def _identifiers(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k in ("identity", "objectId", "email", "phone")}


async def _event_records(
    warehouse: Warehouse, state: CursorState, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    keys = sorted({str(row["uk"]) for row in rows})
    profiles = await profile_records(
        warehouse,
        account_id=state.account_id,
        canonical=keys,
        profile=state.flags.get("profile", True),
        events=state.flags.get("events", True),
    )
    records = []
    for row in rows:
        profile = profiles.get(str(row["uk"])) or {
            name: row[column]
            for column, name in (("identity", "identity"), ("object_id", "objectId"), ("email", "email"))
            if row[column]
        }
        context = str(row["context"])
        records.append(
            {
                "event_name": row["name"],
                "ts": int(row["ts_ms"]) // 1000,
                "event_props": orjson.loads(row["properties"]),
                "session_props": orjson.loads(context) if context else {},
                "profile": profile,
            }
        )
    return records

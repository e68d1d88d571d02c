"""The library entry point other services use to turn a saved segment or a CQL ``where`` into user keys.

The messaging service calls these directly (no HTTP): in embedded mode it shares the process's warehouse and
control store; in distributed mode it holds its own connections to them. Parsing and compiling run off the
event loop (``off_loop``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from tapwire_core.control.store import ControlStore
from tapwire_core.warehouse import Warehouse
from tapwire_query.cql import (
    CompileOptions,
    CqlQuery,
    compile_user_count,
    compile_user_members,
    compile_user_page,
    parse_query,
)
from tapwire_query.cql.off_loop import off_loop
from tapwire_query.segments.store import get_segment


class SegmentNotFound(LookupError):
    """No saved segment with that id belongs to the account."""


async def audience_query(
    *,
    account_id: str,
    where: Mapping[str, Any] | None = None,
    segment_id: str | None = None,
    store: ControlStore | None = None,
) -> CqlQuery:
    """The query behind exactly one of ``where`` (CQL JSON; ``{}`` = every user) or ``segment_id`` (needs
    ``store``). Raises ``CqlError`` for an invalid ``where``, ``SegmentNotFound``, or ``ValueError`` when
    not exactly one is given."""
    if (where is None) == (segment_id is None):
        raise ValueError("give exactly one of where or segment_id")
    if segment_id is not None:
        if store is None:
            raise ValueError("resolving a saved segment needs the control store")
        segment = await get_segment(store, account_id=account_id, segment_id=segment_id)
        if segment is None:
            raise SegmentNotFound(segment_id)
        return await off_loop(parse_query, segment.definition)
    return await off_loop(parse_query, dict(where or {}))


async def resolve_user_keys(
    warehouse: Warehouse,
    *,
    account_id: str,
    where: Mapping[str, Any] | None = None,
    segment_id: str | None = None,
    store: ControlStore | None = None,
    page_size: int = 10_000,
    today: dt.date | None = None,
    cluster: bool = False,
) -> AsyncIterator[list[str]]:
    """Canonical user keys matching the audience, in ascending key order, ``page_size`` at a time.

    Identity merges are applied (a merged person is one key). Raises like ``audience_query``, and
    ``WarehouseError`` / ``WarehouseUnavailable`` from the warehouse.
    """
    query = await audience_query(account_id=account_id, where=where, segment_id=segment_id, store=store)
    options = CompileOptions(today=today or dt.datetime.now(dt.UTC).date(), cluster=cluster)
    after: str | None = None
    while True:
        compiled = await off_loop(
            compile_user_page, query, account_id=account_id, options=options, after=after, limit=page_size
        )
        keys = [str(row["uk"]) for row in await warehouse.query(compiled.sql, compiled.params)]
        if keys:
            yield keys
        if len(keys) < page_size:
            return
        after = keys[-1]


async def count_user_keys(
    warehouse: Warehouse,
    *,
    account_id: str,
    where: Mapping[str, Any] | None = None,
    segment_id: str | None = None,
    store: ControlStore | None = None,
    today: dt.date | None = None,
    cluster: bool = False,
) -> int:
    """How many users the audience holds (the reach estimate). Raises like ``resolve_user_keys``."""
    query = await audience_query(account_id=account_id, where=where, segment_id=segment_id, store=store)
    options = CompileOptions(today=today or dt.datetime.now(dt.UTC).date(), cluster=cluster)
    compiled = await off_loop(compile_user_count, query, account_id=account_id, options=options)
    rows = await warehouse.query(compiled.sql, compiled.params)
    return int(rows[0]["n"]) if rows else 0


async def member_keys(
    warehouse: Warehouse,
    *,
    account_id: str,
    user_keys: Sequence[str],
    where: Mapping[str, Any] | None = None,
    segment_id: str | None = None,
    store: ControlStore | None = None,
    today: dt.date | None = None,
    cluster: bool = False,
) -> set[str]:
    """Those of ``user_keys`` that the audience holds now (keys as the audience names users: canonical ones).
    Raises like ``resolve_user_keys``."""
    if not user_keys:
        return set()
    query = await audience_query(account_id=account_id, where=where, segment_id=segment_id, store=store)
    options = CompileOptions(today=today or dt.datetime.now(dt.UTC).date(), cluster=cluster)
    compiled = await off_loop(
        compile_user_members, query, account_id=account_id, options=options, user_keys=list(user_keys)
    )
    return {str(row["uk"]) for row in await warehouse.query(compiled.sql, compiled.params)}

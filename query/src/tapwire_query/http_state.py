"""Per-app state of the query routes (cursor codec, count jobs), created on first use from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, Request

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_json
from tapwire_core.http.errors import ApiError
from tapwire_core.settings import Settings
from tapwire_core.warehouse import QueryLimits, Warehouse
from tapwire_core.warehouse.limited import LimitedWarehouse
from tapwire_query.cursors import CursorCodec
from tapwire_query.jobs import QueryJobs

# CleverTap allows 3 concurrent requests per account on its query APIs.
QUERY_CONCURRENCY: Final = 3


@dataclass
class QueryState:
    """What the query routes share: the cursor codec, the count jobs, and the warehouse as they may use it
    (read-only, every statement under the deployment's per-query cost limits)."""

    codec: CursorCodec
    jobs: QueryJobs
    warehouse: Warehouse


def query_state(request: Request, context: Context) -> QueryState:
    state: QueryState | None = getattr(request.app.state, "query", None)
    if state is None:
        settings = context.settings
        state = QueryState(
            CursorCodec(settings.query_cursor_secret, ttl_s=settings.query_cursor_ttl_s),
            QueryJobs(context.store),
            LimitedWarehouse(context.warehouse, query_limits(settings)),
        )
        request.app.state.query = state
    return state


State = Annotated[QueryState, Depends(query_state)]


def query_limits(settings: Settings) -> QueryLimits:
    """What one statement of the query service may cost (``TAPWIRE_QUERY_MAX_*``); always read-only."""
    return QueryLimits(
        max_execution_s=settings.query_max_execution_s,
        max_memory_bytes=settings.query_max_memory_bytes,
        max_rows_to_read=settings.query_max_rows_to_read,
    )


async def query_slot(account: PasscodeAccount, context: Context) -> AsyncIterator[None]:
    """Holds one of the account's query slots for the request; 429 past the limit."""
    async with context.limiter.slot(f"{account.id}\x1fquery", QUERY_CONCURRENCY):
        yield


Slot = Depends(query_slot)


# A query is a few kilobytes; these bounds keep a hostile body from being buffered or decoded whole. The depth
# leaves the query language its own, tighter nesting limit (each level of a query is two levels of JSON).
QUERY_LIMITS: Final = BodyLimits(
    max_bytes=1024 * 1024, max_inflated=1024 * 1024, max_values=100_000, max_depth=1000, what="A query body"
)


async def json_body(request: Request, *, empty: Any = None) -> Any:
    """The request body as JSON; ``empty`` when there is none (400 if that is None), 400 when malformed,
    413 past ``QUERY_LIMITS``."""
    value = await read_json(request, QUERY_LIMITS, empty=_NONE if empty is None else empty)
    if value is _NONE:
        raise ApiError(400, "A JSON query body is required")
    return value


_NONE: Final = object()

"""Per-app state of the query routes (cursor codec, count jobs), created on first use from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import orjson
from fastapi import Depends, Request

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.bounded_body import read_bounded
from tapwire_core.http.errors import ApiError
from tapwire_query.cursors import CursorCodec
from tapwire_query.jobs import QueryJobs

# CleverTap allows 3 concurrent requests per account on its query APIs.
QUERY_CONCURRENCY: Final = 3


@dataclass
class QueryState:
    codec: CursorCodec
    jobs: QueryJobs = field(default_factory=QueryJobs)


def query_state(request: Request, context: Context) -> QueryState:
    state: QueryState | None = getattr(request.app.state, "query", None)
    if state is None:
        settings = context.settings
        state = QueryState(CursorCodec(settings.query_cursor_secret, ttl_s=settings.query_cursor_ttl_s))
        request.app.state.query = state
    return state


State = Annotated[QueryState, Depends(query_state)]


async def query_slot(account: PasscodeAccount, context: Context) -> AsyncIterator[None]:
    """Holds one of the account's query slots for the request; 429 past the limit."""
    async with context.limiter.slot(f"{account.id}\x1fquery", QUERY_CONCURRENCY):
        yield


Slot = Depends(query_slot)


# A query is a few kilobytes; this bound keeps a hostile body from being buffered whole.
MAX_QUERY_BYTES: Final = 1024 * 1024


async def json_body(request: Request, *, empty: Any = None) -> Any:
    """The request body as JSON; ``empty`` when there is none (400 if that is None), 400 when malformed,
    413 past ``MAX_QUERY_BYTES``."""
    raw = await read_bounded(request, MAX_QUERY_BYTES, what="A query body")
    if not raw.strip():
        if empty is not None:
            return empty
        raise ApiError(400, "A JSON query body is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "Malformed JSON body") from exc

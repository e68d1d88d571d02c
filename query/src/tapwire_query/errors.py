"""Query failures as clients see them: one mapping from the query path's errors to the API's error shape.

Query code raises what went wrong — ``CqlError`` (the query is invalid), ``CursorError``, the warehouse's
``WarehouseUnavailable`` / ``WarehouseError``, the control store's ``SQLAlchemyError`` — and never an HTTP
error for those. Every query route is a
``QueryRoute``, whose handler turns them into ``ApiError`` through ``api_error``; the background count jobs
use the same function for a failure they record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from tapwire_core.http.errors import ApiError
from tapwire_core.warehouse import WarehouseError, WarehouseUnavailable
from tapwire_query.cql import CqlError
from tapwire_query.cursors import CursorError

log = logging.getLogger(__name__)

QUERY_ERRORS = (CqlError, CursorError, WarehouseError, SQLAlchemyError)


def api_error(exc: BaseException) -> ApiError:
    """The client-visible form of a failure of the query path: 422 invalid query, the cursor's own status,
    503 + ``Retry-After`` when the warehouse is unreachable or overloaded or the control store unreachable,
    else 500 (logged: the input was validated, so a statement the warehouse refuses is a fault of the
    compiler)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, CqlError):
        return ApiError(422, str(exc))
    if isinstance(exc, CursorError):
        return ApiError(exc.status, exc.reason)
    if isinstance(exc, WarehouseUnavailable):
        return ApiError(503, "the warehouse is unavailable; retry later", retry_after=5)
    if isinstance(exc, SQLAlchemyError):
        log.warning("control store unavailable", extra={"error": f"{type(exc).__name__}: {exc}"[:500]})
        return ApiError(503, "the control store is unavailable; retry later", retry_after=5)
    log.error("query failed", extra={"error": f"{type(exc).__name__}: {exc}"[:500]})
    return ApiError(500, "query failed")


class QueryRoute(APIRoute):
    """A route whose handler answers the query path's errors through ``api_error``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except QUERY_ERRORS as exc:
                raise api_error(exc) from exc

        return handler

"""Query failures as clients see them: one mapping from the query path's errors to the API's error shape.

Query code raises what went wrong — ``CqlError`` (the query is invalid), ``CursorError``, the warehouse's
``WarehouseUnavailable`` / ``WarehouseError``, the control store's ``SQLAlchemyError`` — and never an HTTP
error for those. Every query route is a ``QueryRoute`` (``query_route``), whose handler turns them into
``ApiError`` through ``api_error``; the background count jobs use the same function for a failure they record.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from tapwire_core.http.errors import ApiError
from tapwire_core.warehouse import WarehouseError, WarehouseUnavailable
from tapwire_query.cql import CqlError
from tapwire_query.cursors import CursorError

log = logging.getLogger(__name__)


class ClientGone(Exception):
    """The client disconnected before its answer was ready; the work for it was cancelled."""


QUERY_ERRORS = (CqlError, CursorError, WarehouseError, SQLAlchemyError, ClientGone)
# Server error codes of a statement stopped by its own cost limits (QueryLimits), with what to tell the client.
_LIMITS = {
    158: "it would read more rows than one query may here",  # TOO_MANY_ROWS
    307: "it would read more bytes than one query may here",  # TOO_MANY_BYTES
    396: "it would read more rows than one query may here",  # TOO_MANY_ROWS_OR_BYTES
    159: "it would run longer than one query may here",  # TIMEOUT_EXCEEDED (max_execution_time)
    160: "it would run longer than one query may here",  # TOO_SLOW
    241: "it would need more memory than one query may use here",  # MEMORY_LIMIT_EXCEEDED
    167: "it nests deeper than one query may here",  # TOO_DEEP_SUBQUERIES
    168: "it has more conditions than one query may here",  # TOO_BIG_AST (max_ast_elements)
    169: "it nests deeper than one query may here",  # TOO_DEEP_AST
}


def _limit_exceeded(exc: WarehouseError) -> str | None:
    """What per-query limit ``exc`` reports, if it is one: 159 and 241 also arise from a busy or short-of-memory
    server (retry later), told apart by the server's wording."""
    reason = _LIMITS.get(exc.code or 0)
    message = str(exc)
    if reason is None:
        return None
    if exc.code == 159 and "maximum:" not in message:
        return None
    if exc.code == 241 and "(for query)" not in message and "Query memory limit" not in message:
        return None
    return reason


def api_error(exc: BaseException) -> ApiError:
    """The client-visible form of a failure of the query path: 422 invalid query or one past the per-query
    cost limits, the cursor's own status, 499 when the client left, 503 + ``Retry-After`` when the warehouse
    is unreachable or overloaded or the control store unreachable, else 500 (logged: the input was validated,
    so a statement the warehouse refuses is a fault of the compiler)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, CqlError):
        return ApiError(422, str(exc))
    if isinstance(exc, ClientGone):
        return ApiError(499, "the client closed the request before its answer")
    if isinstance(exc, WarehouseError) and (reason := _limit_exceeded(exc)) is not None:
        return ApiError(422, f"The query is too costly: {reason}; narrow its date window or conditions")
    if isinstance(exc, CursorError):
        return ApiError(exc.status, exc.reason)
    if isinstance(exc, WarehouseUnavailable):
        return ApiError(503, "the warehouse is unavailable; retry later", retry_after=5)
    if isinstance(exc, SQLAlchemyError):
        log.warning("control store unavailable", extra={"error": f"{type(exc).__name__}: {exc}"[:500]})
        return ApiError(503, "the control store is unavailable; retry later", retry_after=5)
    log.error("query failed", extra={"error": f"{type(exc).__name__}: {exc}"[:500]})
    return ApiError(500, "query failed")

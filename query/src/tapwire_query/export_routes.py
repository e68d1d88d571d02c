"""``/1/events.json`` and ``/1/profiles.json``: CleverTap's two-step cursor protocol.

Step 1 is ``GET ?batch_size=N&query=<URL-encoded CQL>`` or ``POST ?batch_size=N`` with the CQL as body and
answers ``{"status":"success","cursor":C}``. Step 2 is ``GET ?cursor=C`` (also accepted as POST) and answers
``{"status":"success","records":[…],"next_cursor":C2}``, without ``next_cursor`` on the last page.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.errors import ApiError, json_response
from tapwire_query import exports
from tapwire_query.cursors import CursorKind
from tapwire_query.http_state import Slot, State, json_body
from tapwire_query.query_route import QueryRoute

router = APIRouter(dependencies=[Slot], route_class=QueryRoute)

_FLAGS = {"events": True, "profile": True, "app": False}


def _flags(request: Request) -> dict[str, bool]:
    flags = {}
    for name, default in _FLAGS.items():
        raw = request.query_params.get(name)
        flags[name] = default if raw is None else raw.lower() in ("1", "true", "yes")
    return flags


async def _serve(
    kind: CursorKind, request: Request, *, body: Any, account_id: str, context: Context, state: State
) -> Response:
    cursor = request.query_params.get("cursor")
    if cursor:
        cursor_state = state.codec.decode(cursor, account_id=account_id, kind=kind)
        records, following = await exports.page(
            cursor_state, codec=state.codec, warehouse=state.warehouse, settings=context.settings
        )
        page: dict[str, Any] = {"status": "success", "records": records}
        if following is not None:
            page["next_cursor"] = following
        return json_response(page)
    token = await exports.start(
        kind=kind,
        body=body,
        account_id=account_id,
        batch_size=exports.batch_size_of(request.query_params.get("batch_size")),
        flags=_flags(request),
        codec=state.codec,
        warehouse=state.warehouse,
        settings=context.settings,
    )
    return json_response({"status": "success", "cursor": token})


def _url_query(request: Request) -> Any:
    if request.query_params.get("cursor"):
        return None
    raw = request.query_params.get("query")
    if raw is None:
        raise ApiError(400, "Give a query (URL-encoded CQL) or a cursor")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "query is not valid JSON") from exc


async def _post_body(request: Request) -> Any:
    if request.query_params.get("cursor"):
        return None
    return await json_body(request)


@router.get("/1/events.json")
async def get_events(request: Request, account: PasscodeAccount, context: Context, state: State) -> Response:
    return await _serve(
        "events", request, body=_url_query(request), account_id=account.id, context=context, state=state
    )


@router.post("/1/events.json")
async def post_events(request: Request, account: PasscodeAccount, context: Context, state: State) -> Response:
    body = await _post_body(request)
    return await _serve("events", request, body=body, account_id=account.id, context=context, state=state)


@router.get("/1/profiles.json")
async def get_profiles(
    request: Request, account: PasscodeAccount, context: Context, state: State
) -> Response:
    return await _serve(
        "profiles", request, body=_url_query(request), account_id=account.id, context=context, state=state
    )


@router.post("/1/profiles.json")
async def post_profiles(
    request: Request, account: PasscodeAccount, context: Context, state: State
) -> Response:
    body = await _post_body(request)
    return await _serve("profiles", request, body=body, account_id=account.id, context=context, state=state)

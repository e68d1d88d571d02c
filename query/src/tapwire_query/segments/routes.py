"""Native saved segments: ``POST /segments``, ``GET /segments`` (the list), ``GET /segments/{id}``, ``POST /segments/{id}/count``,
``GET /segments/{id}/members`` (cursor paging: the first call answers the first page)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.errors import ApiError, json_response
from tapwire_query import exports
from tapwire_query.cql import parse_query
from tapwire_query.cql.ast import StrictModel
from tapwire_query.cql.off_loop import off_loop
from tapwire_query.cql.parse import parse_as
from tapwire_query.cursors import CursorState
from tapwire_query.execution import now_ms, options_for
from tapwire_query.http_state import Slot, State, json_body
from tapwire_query.query_route import QueryRoute
from tapwire_query.reports import profile_count_report, run_report
from tapwire_query.segments.store import Segment, create_segment, get_segment, list_segments

router = APIRouter(dependencies=[Slot], route_class=QueryRoute)


class NewSegment(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    definition: dict[str, Any]


def _new_segment(body: Any) -> NewSegment:
    """``body`` as a new segment whose definition is a valid query; raises ``CqlError`` naming the field."""
    new = parse_as(NewSegment, body)
    parse_query(new.definition)
    return new


async def _segment(context: Context, account_id: str, segment_id: str) -> Segment:
    segment = await get_segment(context.store, account_id=account_id, segment_id=segment_id)
    if segment is None:
        raise ApiError(404, "Segment not found")
    return segment


@router.post("/segments")
async def post_segment(request: Request, account: PasscodeAccount, context: Context) -> Response:
    new = await off_loop(_new_segment, await json_body(request))
    segment = await create_segment(
        context.store, account_id=account.id, name=new.name, definition=new.definition
    )
    return json_response({"status": "success", "id": segment.id, "segment": segment.as_json()}, status=201)


@router.get("/segments")
async def list_saved(account: PasscodeAccount, context: Context) -> Response:
    """The account's saved segments, newest first."""
    segments = await list_segments(context.store, account_id=account.id)
    return json_response({"status": "success", "segments": [s.as_json() for s in segments]})


@router.get("/segments/{segment_id}")
async def read_segment(segment_id: str, account: PasscodeAccount, context: Context) -> Response:
    segment = await _segment(context, account.id, segment_id)
    return json_response({"status": "success", "segment": segment.as_json()})


@router.post("/segments/{segment_id}/count")
async def count_segment(
    segment_id: str, account: PasscodeAccount, context: Context, state: State
) -> Response:
    segment = await _segment(context, account.id, segment_id)
    report = await off_loop(
        profile_count_report, segment.definition, account_id=account.id, options=options_for(context.settings)
    )
    return json_response({"status": "success", **await run_report(state.warehouse, report)})


@router.get("/segments/{segment_id}/members")
async def segment_members(
    segment_id: str, request: Request, account: PasscodeAccount, context: Context, state: State
) -> Response:
    cursor = request.query_params.get("cursor")
    if cursor:
        cursor_state = state.codec.decode(cursor, account_id=account.id, kind="members")
        if cursor_state.scope != segment_id:
            raise ApiError(400, "cursor belongs to another segment")
    else:
        segment = await _segment(context, account.id, segment_id)
        cursor_state = CursorState(
            kind="members",
            account_id=account.id,
            query=segment.definition,
            batch_size=exports.batch_size_of(request.query_params.get("batch_size")),
            snapshot_ms=now_ms(),
            after=None,
            expires_at=state.codec.expiry(),
            flags={},
            scope=segment_id,
        )
    records, following = await exports.page(
        cursor_state, codec=state.codec, warehouse=state.warehouse, settings=context.settings
    )
    body: dict[str, Any] = {"status": "success", "records": records}
    if following is not None:
        body["next_cursor"] = following
    return json_response(body)

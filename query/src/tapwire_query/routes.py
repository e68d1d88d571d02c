"""Query endpoints: one profile here; exports, counts and saved segments in their own modules."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_core.http.auth import PasscodeAccount
from tapwire_core.http.errors import ApiError, json_response
from tapwire_core.http.query_string import literal_params
from tapwire_query.aggregates.routes import router as aggregate_router
from tapwire_query.count_routes import router as count_router
from tapwire_query.export_routes import router as export_router
from tapwire_query.http_state import State
from tapwire_query.insight_routes import router as insight_router
from tapwire_query.profile_lookup import Selector, find_user_key, profile_record
from tapwire_query.query_route import QueryRoute
from tapwire_query.segments.routes import router as segment_router

router = APIRouter(route_class=QueryRoute)

_SELECTORS: tuple[Selector, ...] = ("email", "identity", "objectId")


@router.get("/1/profile.json")
async def get_profile(request: Request, account: PasscodeAccount, state: State) -> Response:
    params = literal_params(request.scope.get("query_string", b""))
    chosen = [s for s in _SELECTORS if params.get(s)]
    if len(chosen) != 1:
        raise ApiError(400, "Give exactly one of identity, email or objectId")
    selector = chosen[0]
    warehouse = state.warehouse
    user_key = await find_user_key(
        warehouse, account_id=account.id, selector=selector, value=params[selector]
    )
    record = await profile_record(warehouse, account_id=account.id, user_key=user_key) if user_key else None
    if record is None:
        raise ApiError(404, "Profile not found")
    return json_response({"status": "success", "record": record})


router.include_router(export_router)
router.include_router(count_router)
router.include_router(segment_router)
router.include_router(insight_router)
router.include_router(aggregate_router)

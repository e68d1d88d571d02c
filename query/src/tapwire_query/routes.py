"""Query endpoints served today: one profile, event counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.errors import ApiError, json_response
from tapwire_core.http.query_string import literal_params
from tapwire_query.dates import QueryDate
from tapwire_query.event_counts import count_events
from tapwire_query.profile_lookup import Selector, find_user_key, profile_record

router = APIRouter()

_SELECTORS: tuple[Selector, ...] = ("email", "identity", "objectId")


@router.get("/1/profile.json")
async def get_profile(request: Request, account: PasscodeAccount, context: Context) -> Response:
    params = literal_params(request.scope.get("query_string", b""))
    chosen = [s for s in _SELECTORS if params.get(s)]
    if len(chosen) != 1:
        raise ApiError(400, "Give exactly one of identity, email or objectId")
    selector = chosen[0]
    warehouse = context.warehouse
    user_key = await find_user_key(
        warehouse, account_id=account.id, selector=selector, value=params[selector]
    )
    record = await profile_record(warehouse, account_id=account.id, user_key=user_key) if user_key else None
    if record is None:
        raise ApiError(404, "Profile not found")
    return json_response({"status": "success", "record": record})


class EventCountQuery(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    event_name: str = Field(min_length=1, max_length=512)
    from_: QueryDate = Field(alias="from")
    to: QueryDate

    @model_validator(mode="after")
    def _ordered(self) -> EventCountQuery:
        if self.from_ > self.to:
            raise ValueError("from must not be after to")
        return self


@router.post("/1/counts/events.json")
async def post_event_count(
    query: Annotated[EventCountQuery, Body()], account: PasscodeAccount, context: Context
) -> Response:
    count = await count_events(
        context.warehouse,
        account_id=account.id,
        event_name=query.event_name,
        first_day=query.from_,
        last_day=query.to,
    )
    return json_response({"status": "success", "count": count})

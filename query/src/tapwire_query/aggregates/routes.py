"""``POST /query/v1/aggregates`` (the account's own users, its passcode) and ``POST /query/v1/aggregates/industry``
(every participating account's users, an operator credential): anonymised aggregates for sharing beyond the
customer. The rule and its protection: ``suppression``, ``differencing``, ``service``.

An operator credential is the passcode of an account named in ``TAPWIRE_OPERATOR_ACCOUNTS`` (created like any
other, e.g. with ``tapwire accounts create``, rotated with ``tapwire accounts rotate``): it answers industry
aggregates only, and its own account never counts among the participants.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_core.http.auth import Context, PasscodeAccount, principal_of
from tapwire_core.http.body import BodyLimits, read_json
from tapwire_core.http.context import ServiceContext
from tapwire_core.http.errors import ApiError, json_response
from tapwire_query.aggregates.releases import ReleaseLedger
from tapwire_query.aggregates.service import AggregateScope, release
from tapwire_query.aggregates.suppression import Threshold
from tapwire_query.http_state import Slot, State
from tapwire_query.query_route import QueryRoute

router = APIRouter(prefix="/query/v1/aggregates", dependencies=[Slot], route_class=QueryRoute)

# A definition is kept for the comparison window and compiled again for every later request: a smaller body than
# a query's megabyte keeps both bounded.
_LIMITS: Final = BodyLimits(
    max_bytes=64 * 1024, max_inflated=64 * 1024, max_values=5_000, max_depth=200, what="An aggregate body"
)
INDUSTRY_OPT_OUT: Final = "industry_benchmarks"
"""Account setting: ``false`` keeps the account's users out of industry aggregates."""


def operator_accounts(context: ServiceContext) -> frozenset[str]:
    raw = context.settings.operator_accounts or ""
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


async def _body(request: Request) -> Any:
    return await read_json(request, _LIMITS)


@router.post("")
async def account_aggregate(
    request: Request, account: PasscodeAccount, context: Context, state: State
) -> Response:
    """An aggregate of the account's own users, every released figure at least k of them."""
    if account.id in operator_accounts(context):
        raise ApiError(403, "An operator credential answers industry aggregates only")
    body = await _body(request)
    scope = AggregateScope(account.id, (account.id,), Threshold(context.settings.aggregate_min_users))
    answer = await release(
        warehouse=state.warehouse,
        ledger=ReleaseLedger(context.store),
        settings=context.settings,
        scope=scope,
        body=body,
        now=dt.datetime.now(dt.UTC),
    )
    return json_response({"status": "success", "scope": "account", **answer})


@router.post("/industry")
async def industry_aggregate(
    request: Request, account: PasscodeAccount, context: Context, state: State
) -> Response:
    """An aggregate across every participating account: each released figure has at least k users and users
    of at least ``TAPWIRE_AGGREGATE_MIN_ACCOUNTS`` accounts."""
    operators = operator_accounts(context)
    if account.id not in operators or not principal_of(request).is_passcode:
        raise ApiError(403, "Industry aggregates need an operator credential")
    body = await _body(request)
    settings = context.settings
    participants = tuple(
        sorted(
            a.id
            for a in await context.store.list_accounts()
            if a.region == settings.region
            and a.id not in operators
            and a.settings.get(INDUSTRY_OPT_OUT) is not False
        )
    )
    if len(participants) < settings.aggregate_min_accounts:
        raise ApiError(
            422,
            f"Industry aggregates need at least {settings.aggregate_min_accounts} participating accounts; "
            f"this deployment has {len(participants)}",
        )
    threshold = Threshold(settings.aggregate_min_users, settings.aggregate_min_accounts)
    answer = await release(
        warehouse=state.warehouse,
        ledger=ReleaseLedger(context.store),
        settings=settings,
        scope=AggregateScope(None, participants, threshold),
        body=body,
        now=dt.datetime.now(dt.UTC),
    )
    return json_response({"status": "success", "scope": "industry", "accounts": len(participants), **answer})

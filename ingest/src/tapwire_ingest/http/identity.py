"""CleverTap's identity management endpoints: ``/1/demerge/profiles.json`` and ``/1/disassociate``.

Both change the identity graph and publish the resulting ``user_aliases`` rows before answering, so a 200 means
queries will count the split profiles separately.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.body import read_object
from tapwire_core.http.errors import ApiError, json_response
from tapwire_core.identity import AliasRow, alias_envelopes
from tapwire_core.identity.keys import NodeKind, key_for
from tapwire_ingest.http.upload import publish, upload_limits
from tapwire_ingest.identity_links import identity_graph

router = APIRouter()

MAX_DEMERGE_IDENTITIES = 100
MAX_DISASSOCIATE_ITEMS = 1000
_DISASSOCIATE_KINDS: dict[Any, NodeKind] = {"phone": "phone", "email": "email"}


@router.post("/1/demerge/profiles.json")
async def demerge(request: Request, account: PasscodeAccount, context: Context) -> Response:
    """Body ``{"identities": ["client-1", "a@b.com"]}`` (≤ 100): each identity is split off its profile."""
    payload = await read_object(request, upload_limits(context.settings))
    identities = payload.get("identities")
    if type(identities) is str:
        identities = [identities]
    if type(identities) is not list or not identities or not all(type(i) is str and i for i in identities):
        raise ApiError(400, 'Body must name a non-empty list of strings under "identities"')
    if len(identities) > MAX_DEMERGE_IDENTITIES:
        raise ApiError(400, f"At most {MAX_DEMERGE_IDENTITIES} identities per demerge")
    graph = identity_graph(request)
    try:
        rows = await graph.demerge(account.id, [key_for("identity", i) for i in identities])
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(context.settings.retry_after_s) from exc
    await _publish_rows(context, account.id, rows)
    return json_response({"status": "success", "processed": len(identities), "changed": len(rows)})


@router.post("/1/disassociate")
@router.post("/1/disassociate/", include_in_schema=False)
async def disassociate(request: Request, account: PasscodeAccount, context: Context) -> Response:
    """Body ``{"d": [{"type": "phone", "value": "+14155551234"}]}``: detach each identifier from its profile."""
    payload = await read_object(request, upload_limits(context.settings))
    items = payload.get("d")
    if type(items) is not list or not items:
        raise ApiError(400, 'Body must hold a non-empty list of items under "d"')
    if len(items) > MAX_DISASSOCIATE_ITEMS:
        raise ApiError(400, f"At most {MAX_DISASSOCIATE_ITEMS} items per request")
    graph = identity_graph(request)
    rows: list[AliasRow] = []
    unprocessed: list[dict[str, Any]] = []
    processed = 0
    for position, item in enumerate(items, start=1):
        kind = _DISASSOCIATE_KINDS.get(item.get("type")) if type(item) is dict else None
        value = item.get("value") if type(item) is dict else None
        if kind is None or type(value) is not str or not value:
            unprocessed.append(
                {
                    "status": "fail",
                    "code": 400,
                    "error": f'Each item needs type "phone" or "email" and a value. Skipped record number : {position}',
                    "record": item,
                }
            )
            continue
        try:
            rows.extend(await graph.disassociate(account.id, key_for(kind, value)))
        except (SQLAlchemyError, OSError) as exc:
            raise _unavailable(context.settings.retry_after_s) from exc
        processed += 1
    await _publish_rows(context, account.id, rows)
    status = "success" if not unprocessed else ("partial" if processed else "fail")
    return json_response({"status": status, "processed": processed, "unprocessed": unprocessed})


async def _publish_rows(context: Any, account_id: str, rows: list[AliasRow]) -> None:
    if rows:
        await publish(context, alias_envelopes(account_id, rows, received_ms=time.time_ns() // 1_000_000))


def _unavailable(retry_after_s: int) -> ApiError:
    return ApiError(
        503, "Identity resolution is temporarily unavailable; retry later", retry_after=retry_after_s
    )

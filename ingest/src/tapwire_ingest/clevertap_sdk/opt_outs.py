"""``clevertap.privacy.push({optOut: true|false})``: the server keeps the promise, not only the browser's cookie.

The SDK sends the choice as a profile record (``ct_optout``) with ``optOut=`` in the URL. Opting out lists the
device id and every identifier linked to it (``tapwire_core.control.tracking_opt_outs``, which also records the
marketing objection), and the answer gives the browser its device id with the ``:OO`` mark, after which the SDK
sends nothing more. Should anything still arrive from the device, or from another device of the same person (a
login linking it to an opted-out identity), the gateway stores nothing of it. Opting back in lifts all of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.tracking_opt_outs import TrackingOptOutList, lift_opt_out, record_opt_out
from tapwire_core.http.errors import ApiError
from tapwire_core.identity import IdentityGraph
from tapwire_ingest.clevertap_sdk.web_records import OPT_OUT_PROPERTY
from tapwire_ingest.clevertap_sdk.web_request import WebRequest


def opt_out_choice(web: WebRequest) -> bool | None:
    """True/False when the request is the SDK's privacy record, else None."""
    if web.type != "push" or web.payload.get("type") != "profile":
        return None
    profile = web.payload.get("profile")
    choice = profile.get(OPT_OUT_PROPERTY) if type(profile) is dict else None
    if type(choice) is bool:
        return choice
    return None


async def set_opt_out(
    engine: AsyncEngine,
    graph: IdentityGraph,
    opt_outs: TrackingOptOutList,
    *,
    account_id: str,
    device_key: str,
    opted_out: bool,
    retry_after_s: int,
) -> None:
    """Record (or lift) the opt-out of the device and everyone linked to it. Raises ApiError 503 when the
    control store is unreachable: the SDK then keeps the request and sends it again."""
    try:
        keys = {device_key, *await graph.linked_identifiers(account_id, device_key)}
        async with AsyncSession(engine) as session, session.begin():
            if opted_out:
                hashes = await record_opt_out(session, account_id=account_id, keys=keys, at=datetime.now(UTC))
            else:
                hashes = await lift_opt_out(session, account_id=account_id, keys=keys)
    except (SQLAlchemyError, OSError) as exc:
        raise ApiError(
            503, "Privacy settings cannot be saved right now; retry later", retry_after=retry_after_s
        ) from exc
    if opted_out:
        opt_outs.add(account_id, hashes)
    else:
        opt_outs.remove(account_id, hashes)


async def add_opt_out(
    engine: AsyncEngine, opt_outs: TrackingOptOutList, *, account_id: str, keys: Any, retry_after_s: int
) -> None:
    """List more keys (a new device of an opted-out person)."""
    try:
        async with AsyncSession(engine) as session, session.begin():
            hashes = await record_opt_out(session, account_id=account_id, keys=keys, at=datetime.now(UTC))
    except (SQLAlchemyError, OSError) as exc:
        raise ApiError(
            503, "Privacy settings cannot be saved right now; retry later", retry_after=retry_after_s
        ) from exc
    opt_outs.add(account_id, hashes)

"""``POST /1/delete/profiles.json``: CleverTap's profile deletion, as one erasure request per profile, all of one
call recorded together (one transaction) so the worker erases them with one pass."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_core.http.auth import PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_object
from tapwire_core.http.errors import ApiError, json_response
from tapwire_privacy.records import iso
from tapwire_privacy.routes.dependencies import Privacy

router = APIRouter()

MAX_PROFILES = 1000
_LIMITS = BodyLimits(max_bytes=1024 * 1024, max_inflated=4 * 1024 * 1024, max_values=10_000, max_depth=8)


@router.post("/1/delete/profiles.json")
async def delete_profiles(request: Request, account: PasscodeAccount, privacy: Privacy) -> Response:
    """Body ``{"identity": "x" | [...]}`` or ``{"guid": "g" | [...]}`` (guid = objectId); both -> 400."""
    payload = await read_object(request, _LIMITS)
    has_identity, has_guid = payload.get("identity") is not None, payload.get("guid") is not None
    if has_identity == has_guid:
        raise ApiError(400, 'Give exactly one of "identity" or "guid"')
    field, prefix = ("identity", "i") if has_identity else ("guid", "o")
    raw = payload[field]
    values = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) and v.strip() for v in values)
    ):
        raise ApiError(400, f'"{field}" must be a non-empty string or a list of them')
    if len(values) > MAX_PROFILES:
        raise ApiError(400, f"At most {MAX_PROFILES} profiles per call")
    views = await privacy.submit_erasures(
        account=account,
        channel="clevertap",
        subjects=[[f"{prefix}:{value}"] for value in dict.fromkeys(v.strip() for v in values)],
    )
    created = [{"id": view.id, "due_at": iso(view.due_at)} for view in views]
    return json_response({"status": "success", "processed": len(created), "requests": created})

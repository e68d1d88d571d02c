"""``/messaging/v1/journeys``: create a journey, store a new version, read its per-step counts and a user's
history, stop it. Bodies are validated JSON; a refused one answers 400 (malformed) or 422 (cannot run), naming
the field."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_core.http.auth import PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_json
from tapwire_core.http.errors import ApiError, json_response
from tapwire_messaging.audience import AudienceError
from tapwire_messaging.campaigns import MalformedCampaign, UnrunnableCampaign
from tapwire_messaging.journeys.store import Journey
from tapwire_messaging.service import MessagingService

router = APIRouter()

_LIMITS = BodyLimits(max_bytes=1024 * 1024, max_inflated=1024 * 1024, max_values=100_000, max_depth=200)


def _service(request: Request) -> MessagingService:
    service: MessagingService | None = getattr(request.app.state, "messaging", None)
    if service is None:
        raise ApiError(503, "messaging is not running in this process")
    return service


async def _save(
    service: MessagingService, account_id: str, payload: Any, journey: Journey | None = None
) -> tuple[int, int]:
    try:
        return await service.save_journey(account_id, payload, journey)
    except MalformedCampaign as exc:
        raise ApiError(400, str(exc)) from exc
    except (UnrunnableCampaign, AudienceError) as exc:
        raise ApiError(422, str(exc)) from exc


async def _journey(service: MessagingService, account_id: str, journey_id: int) -> Journey:
    journey = await service.journeys.get(journey_id, account_id)
    if journey is None:
        raise ApiError(404, f"Journey {journey_id} not found")
    return journey


@router.post("/messaging/v1/journeys")
async def create_journey(request: Request, account: PasscodeAccount) -> Response:
    service = _service(request)
    journey_id, version = await _save(service, account.id, await read_json(request, _LIMITS))
    return json_response({"status": "success", "id": journey_id, "version": version}, 201)


@router.put("/messaging/v1/journeys/{journey_id}")
async def new_version(journey_id: int, request: Request, account: PasscodeAccount) -> Response:
    """A new version: it applies to users who enter from now on; users inside stay on theirs."""
    service = _service(request)
    journey = await _journey(service, account.id, journey_id)
    if journey.status != "active":
        raise ApiError(409, f"Journey {journey_id} is {journey.status}")
    _, version = await _save(service, account.id, await read_json(request, _LIMITS), journey)
    return json_response({"status": "success", "id": journey_id, "version": version})


@router.get("/messaging/v1/journeys/{journey_id}")
async def get_journey(journey_id: int, request: Request, account: PasscodeAccount) -> Response:
    service = _service(request)
    journey = await _journey(service, account.id, journey_id)
    definition = await service.journeys.definition(journey.id, journey.version)
    counts = await service.journey_positions.step_counts(journey.id)
    return json_response(
        {
            "status": "success",
            "journey": {
                "id": journey.id,
                "name": journey.name,
                "status": journey.status,
                "version": journey.version,
                "definition": None if definition is None else definition.to_stored(),
                "steps": counts,
            },
        }
    )


@router.get("/messaging/v1/journeys/{journey_id}/users/{user_key}")
async def user_history(
    journey_id: int, user_key: str, request: Request, account: PasscodeAccount
) -> Response:
    """The user's positions in the journey (one per entry) and every step each went through."""
    service = _service(request)
    journey = await _journey(service, account.id, journey_id)
    history = await service.journey_positions.history(journey.id, user_key)
    return json_response({"status": "success", "user_key": user_key, "positions": history})


@router.post("/messaging/v1/journeys/{journey_id}/stop")
async def stop_journey(journey_id: int, request: Request, account: PasscodeAccount) -> Response:
    service = _service(request)
    journey = await _journey(service, account.id, journey_id)
    await service.journeys.stop(journey, now_ms=service.now_ms())
    if service.evaluator is not None:
        service.evaluator.invalidate()
    return json_response({"status": "success", "id": journey.id})

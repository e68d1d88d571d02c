"""CORS for browser ingestion: any page may preflight; the account's ``cors_origins`` setting decides the rest.

Preflight requests carry no credentials, so they cannot name an account: they are answered for every origin.
The real request names its write key; an account whose settings list ``cors_origins`` accepts only those
origins (403 otherwise), an account without the setting accepts any (write keys are public in web pages anyway).
No response on these paths sets or reads cookies, so ``Allow-Credentials`` is never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from tapwire_core.http.errors import ApiError, error_response

ORIGINS_SETTING = "cors_origins"
_ALLOWED_HEADERS = "Authorization, Content-Type, Content-Encoding, X-Retry-Count"
_PREFLIGHT_MAX_AGE_S = "86400"


def origin_allowed(origin: str, settings: Mapping[str, Any]) -> bool:
    allowed = settings.get(ORIGINS_SETTING)
    if allowed is None or allowed == "*":
        return True
    if type(allowed) is str:
        allowed = [allowed]
    return type(allowed) is list and (
        "*" in allowed or origin.rstrip("/") in [str(o).rstrip("/") for o in allowed]
    )


def check_origin(request: Request, settings: Mapping[str, Any]) -> None:
    origin = request.headers.get("origin")
    if origin is not None and not origin_allowed(origin, settings):
        request.state.cors_refused = True
        raise ApiError(403, f"Origin {origin} may not send events for this account")


def preflight(request: Request) -> Response:
    response = Response(status_code=204)
    origin = request.headers.get("origin")
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = request.headers.get(
            "access-control-request-headers", _ALLOWED_HEADERS
        )
        response.headers["Access-Control-Max-Age"] = _PREFLIGHT_MAX_AGE_S
        response.headers["Vary"] = "Origin"
    return response


class CorsRoute(APIRoute):
    """Adds CORS headers to every answer of the route, errors included, so a page can read why it failed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                response = await handle(request)
            except ApiError as exc:
                response = error_response(exc.status, exc.error, code=exc.code, retry_after=exc.retry_after)
            origin = request.headers.get("origin")
            if origin is not None and not getattr(request.state, "cors_refused", False):
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Expose-Headers"] = "Retry-After"
                response.headers["Vary"] = "Origin"
            return response

        return with_cors

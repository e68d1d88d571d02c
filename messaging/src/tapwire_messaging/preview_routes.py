"""``POST /messaging/v1/preview``: a message's content rendered for one sample person, as a sender would.

The caller supplies the person's profile properties (read with ``/1/profile.json`` or from a segment's
members), so the preview needs no database and shows exactly what the templates do with those values. HTML is
rendered with Liquid's autoescaping, as in a real send; the answer is JSON text for the caller to display.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tapwire_core.http.auth import PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_model
from tapwire_core.http.errors import ApiError, json_response
from tapwire_messaging.templates import TemplateError, compile_content

router = APIRouter()
# Read after the passcode or session is checked.
_LIMITS = BodyLimits(max_bytes=256 * 1024, max_inflated=256 * 1024, max_values=20_000, max_depth=16)


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: dict[str, str | int | float | bool | None] = Field(max_length=32)
    profile: dict[str, Any] = Field(default_factory=dict, max_length=1000)
    event: dict[str, Any] = Field(default_factory=dict, max_length=1000)
    campaign_name: str = Field(default="", max_length=200)
    variant: str = Field(default="A", max_length=32)


@router.post("/messaging/v1/preview")
async def preview(request: Request, account: PasscodeAccount) -> Response:
    preview_in = await read_model(request, PreviewIn, _LIMITS)
    try:
        compiled = compile_content(preview_in.content)
        rendered = compiled.render(
            {
                "Profile": preview_in.profile,
                "Event": preview_in.event,
                "Campaign": {"id": 0, "name": preview_in.campaign_name, "variant": preview_in.variant},
            }
        )
    except TemplateError as exc:
        raise ApiError(422, str(exc)) from exc
    return json_response({"status": "success", "rendered": rendered})

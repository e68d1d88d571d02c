"""The privacy service object, injected from the app's state (set by the assembly or a test)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tapwire_privacy.service import PrivacyService


def privacy_service(request: Request) -> PrivacyService:
    service: PrivacyService | None = getattr(request.app.state, "privacy", None)
    if service is None:
        raise RuntimeError("this app runs without the privacy service")
    return service


Privacy = Annotated[PrivacyService, Depends(privacy_service)]

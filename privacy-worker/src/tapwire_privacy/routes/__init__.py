"""HTTP routes of the privacy service."""

from tapwire_privacy.routes.clevertap import router as clevertap_router
from tapwire_privacy.routes.intake import router as intake_router
from tapwire_privacy.routes.offboarding import router as offboarding_router
from tapwire_privacy.routes.requests import router as requests_router

ROUTERS = (clevertap_router, requests_router, intake_router, offboarding_router)

__all__ = ["ROUTERS"]

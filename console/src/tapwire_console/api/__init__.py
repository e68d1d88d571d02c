"""The account administration API (``/account/v1``): settings, credentials, console users and roles, sign-in
sessions, the audit log. Scripts use it with the passcode; the console's pages with a session."""

from tapwire_console.api.account_routes import router as account_router
from tapwire_console.api.session_routes import router as session_router
from tapwire_console.api.user_routes import router as user_router

ROUTERS = (account_router, session_router, user_router)

__all__ = ["ROUTERS"]

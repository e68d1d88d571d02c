"""Records every changing request made with a console session in the audit log, with its outcome.

The authenticating dependency marks such a request (``request.state.audit``); this middleware writes the entry
once the response status is known. Routes that write richer entries themselves (the account administration
API) do not mark their requests.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tapwire_core.http.auth import AuditIntent
from tapwire_core.http.context import ServiceContext

log = logging.getLogger(__name__)


class AuditTrail:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            intent = scope.get("state", {}).get("audit")
            if intent is not None:
                await _record(scope, intent, status)


async def _record(scope: Scope, intent: object, status: int) -> None:
    assert isinstance(intent, AuditIntent)
    context: ServiceContext = scope["app"].state.context
    if context.console is None:
        return
    route = scope.get("route")
    principal = intent.principal
    try:
        await context.console.audit.record(
            principal.account_id,
            actor=principal.actor,
            actor_user_id=principal.user_id,
            role=principal.role,
            action=f"{scope['method']} {getattr(route, 'path', scope['path'])}",
            target=scope["path"],
            outcome="ok" if status < 400 else ("refused" if status < 500 else "failed"),
            client=intent.client,
            detail={"status": status, "capability": intent.capability},
        )
    except Exception:
        # The action itself is done; a lost audit entry is logged loudly rather than failing the response.
        log.exception("audit entry not recorded", extra={"path": scope["path"]})

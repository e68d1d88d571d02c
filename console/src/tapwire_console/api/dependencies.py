"""What the account API's routes share: the console tables, the signed-in principal, audit entries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from tapwire_core.control.console.audit import Outcome
from tapwire_core.control.console.directory import ConsoleDirectory
from tapwire_core.http.auth import Context, Principal, principal_of
from tapwire_core.http.errors import ApiError


def console_directory(context: Context) -> ConsoleDirectory:
    if context.console is None:
        raise ApiError(503, "console users are not available in this service")
    return context.console


Console = Annotated[ConsoleDirectory, Depends(console_directory)]


def client_of(request: Request) -> str:
    return request.client.host if request.client is not None else ""


async def audit(
    request: Request,
    console: ConsoleDirectory,
    action: str,
    *,
    target: str = "",
    outcome: Outcome = "ok",
    detail: dict[str, Any] | None = None,
    principal: Principal | None = None,
) -> None:
    """An entry for ``action`` by the request's principal (or ``principal``, before one is recorded)."""
    who = principal or principal_of(request)
    await console.audit.record(
        who.account_id,
        actor=who.actor,
        actor_user_id=who.user_id,
        role=who.role,
        action=action,
        target=target,
        outcome=outcome,
        client=client_of(request),
        detail=detail,
    )

"""Console users and roles: invitations by email, role changes, resets, removal; accepting an invitation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from starlette.responses import Response

from tapwire_console.api.dependencies import Console, audit, client_of
from tapwire_console.mailer import Mailer, invitation_text
from tapwire_core.control.console.roles import Role
from tapwire_core.control.console.throttle import CLIENT_RULE, client_key
from tapwire_core.control.console.types import (
    Invitation,
    InvitationInvalidError,
    PasswordRejectedError,
    UserExistsError,
    UserNotFoundError,
    iso,
)
from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_model
from tapwire_core.http.errors import ApiError, json_response

router = APIRouter(prefix="/account/v1")
# Bodies are read in the handler, after the credentials are checked (a pydantic ``Body()`` parameter would be
# read before the authenticating dependency runs).
_LIMITS = BodyLimits(max_bytes=64 * 1024, max_inflated=64 * 1024, max_values=2_000, max_depth=8)


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=254)
    name: str = Field(min_length=1, max_length=200)
    role: Role


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=8, max_length=100)
    password: str = Field(max_length=256)
    name: str | None = Field(default=None, max_length=200)


def invitation_url(context: Context, token: str) -> str:
    return f"{context.settings.resolved_public_url().rstrip('/')}/console/invitation/{token}"


async def _deliver(
    context: Context, account_id: str, invitation: Invitation, *, reset: bool
) -> dict[str, Any]:
    """Email the invitation; when no relay took it, the link is in the answer (once) for the admin to pass on."""
    url = invitation_url(context, invitation.token)
    mailer = Mailer(context.settings.smtp_url, context.settings.email_from)
    subject, text = invitation_text(name=invitation.user.name, account=account_id, url=url, reset=reset)
    delivery = await mailer.send(to=invitation.user.email, subject=subject, text=text)
    body: dict[str, Any] = {"sent": delivery.sent, "expires_at": iso(invitation.expires_at)}
    if not delivery.sent:
        body["reason"] = delivery.reason
        body["url"] = url
    return body


def _not_found(exc: UserNotFoundError) -> ApiError:
    return ApiError(404, f"no console user {exc} in this account")


@router.get("/users")
async def list_users(account: PasscodeAccount, console: Console) -> Response:
    users = await console.users.list(account.id)
    return json_response({"status": "success", "users": [u.to_json() for u in users]})


@router.post("/users")
async def invite_user(
    request: Request,
    account: PasscodeAccount,
    context: Context,
    console: Console,
) -> Response:
    user_in = await read_model(request, UserIn, _LIMITS)
    try:
        invitation = await console.users.invite(
            account.id, email=str(user_in.email), name=user_in.name, role=user_in.role
        )
    except UserExistsError as exc:
        raise ApiError(409, str(exc)) from exc
    delivery = await _deliver(context, account.id, invitation, reset=False)
    await audit(
        request,
        console,
        "users.invite",
        target=invitation.user.email,
        detail={"role": user_in.role, "emailed": delivery["sent"]},
    )
    return json_response(
        {"status": "success", "user": invitation.user.to_json(), "invitation": delivery}, status=201
    )


@router.patch("/users/{user_id}")
async def change_user(
    request: Request,
    user_id: int,
    account: PasscodeAccount,
    console: Console,
) -> Response:
    change = await read_model(request, UserChange, _LIMITS)
    try:
        user = await console.users.update(account.id, user_id, role=change.role, name=change.name)
    except UserNotFoundError as exc:
        raise _not_found(exc) from exc
    await audit(
        request, console, "users.change", target=user.email, detail=change.model_dump(exclude_none=True)
    )
    return json_response({"status": "success", "user": user.to_json()})


@router.delete("/users/{user_id}")
async def remove_user(request: Request, user_id: int, account: PasscodeAccount, console: Console) -> Response:
    try:
        user = await console.users.get(account.id, user_id)
        await console.users.delete(account.id, user_id)
    except UserNotFoundError as exc:
        raise _not_found(exc) from exc
    await console.audit.forget_user(account.id, user_id)
    await audit(request, console, "users.remove", target=f"user #{user_id}", detail={"role": user.role})
    return json_response({"status": "success", "removed": user_id})


@router.post("/users/{user_id}/reset")
async def reset_user(
    request: Request, user_id: int, account: PasscodeAccount, context: Context, console: Console
) -> Response:
    """The user's password is cleared and their sessions closed; a new invitation goes to their email."""
    try:
        invitation = await console.users.reset(account.id, user_id)
    except UserNotFoundError as exc:
        raise _not_found(exc) from exc
    delivery = await _deliver(context, account.id, invitation, reset=True)
    await audit(
        request, console, "users.reset", target=invitation.user.email, detail={"emailed": delivery["sent"]}
    )
    return json_response({"status": "success", "user": invitation.user.to_json(), "invitation": delivery})


@router.get("/invitations/{token}")
async def show_invitation(token: str, console: Console) -> Response:
    """No passcode: who the invitation is for, so the page can greet them. 404 when it is not live."""
    try:
        user = await console.users.invitation(token)
    except InvitationInvalidError as exc:
        raise ApiError(404, str(exc)) from exc
    return json_response(
        {"status": "success", "account_id": user.account_id, "email": user.email, "name": user.name}
    )


@router.post("/invitations/accept")
async def accept_invitation(request: Request, console: Console) -> Response:
    """No passcode: the invited person chooses a password with the token from their email."""
    accept = await read_model(request, AcceptIn, _LIMITS, public=True)
    throttle_key = client_key(client_of(request))
    locked = await console.throttle.locked_for([throttle_key])
    if locked is not None:
        raise ApiError(429, "Too many attempts; try again later", retry_after=locked)
    try:
        user = await console.users.accept(accept.token, password=accept.password, name=accept.name)
    except InvitationInvalidError as exc:
        await console.throttle.failed([(throttle_key, CLIENT_RULE)])
        raise ApiError(404, str(exc)) from exc
    except PasswordRejectedError as exc:
        raise ApiError(422, str(exc)) from exc
    await console.audit.record(
        user.account_id,
        actor=user.email,
        actor_user_id=user.id,
        role=user.role,
        action="users.accept_invitation",
        target=user.email,
        client=client_of(request),
    )
    return json_response({"status": "success", "user": user.to_json(), "account_id": user.account_id})

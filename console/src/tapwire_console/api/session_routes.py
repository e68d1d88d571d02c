"""Signing in and out, and each signed-in person's own data ("my profile").

``POST /account/v1/sessions`` opens a session with an email and password, or with the account's passcode (the
first-start admin). Failures are throttled per account and login and per client address; a locked key answers
429 with ``Retry-After``. The token in the answer goes in ``Authorization: Bearer`` on every API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from tapwire_console.api.dependencies import Console, audit, client_of
from tapwire_core.control.console.directory import ConsoleDirectory
from tapwire_core.control.console.roles import Role
from tapwire_core.control.console.throttle import CLIENT_RULE, LOGIN_RULE, client_key, login_key
from tapwire_core.control.console.types import (
    ConsoleUser,
    OpenedSession,
    PasswordRejectedError,
    UserExistsError,
    iso,
)
from tapwire_core.http.auth import Context, PasscodeAccount, Principal, credential_errors, principal_of
from tapwire_core.http.body import BodyLimits, read_model
from tapwire_core.http.errors import ApiError, json_response

router = APIRouter(prefix="/account/v1")
# Bodies are read in the handler, after the credentials are checked (a pydantic ``Body()`` parameter would be
# read before the authenticating dependency runs).
_LIMITS = BodyLimits(max_bytes=64 * 1024, max_inflated=64 * 1024, max_values=2_000, max_depth=8)


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=64)
    email: str | None = Field(default=None, max_length=254)
    password: str | None = Field(default=None, max_length=256)
    passcode: str | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _one_way(self) -> SignIn:
        by_password = self.email is not None or self.password is not None
        if by_password == (self.passcode is not None):
            raise ValueError("sign in with either email and password, or the account's passcode")
        if by_password and (not self.email or not self.password):
            raise ValueError("email and password are both required")
        return self


def _session_body(opened: OpenedSession, console: ConsoleDirectory) -> dict[str, Any]:
    session = opened.session
    return {
        "status": "success",
        "token": opened.token,
        "role": session.role,
        "account_id": session.account_id,
        "user": None if session.user is None else session.user.to_json(),
        "expires_at": iso(session.expires_at),
        "idle_timeout_s": int(console.sessions.idle.total_seconds()),
    }


@router.post("/sessions")
async def sign_in(request: Request, context: Context, console: Console) -> Response:
    sign_in = await read_model(request, SignIn, _LIMITS, public=True)
    account_id = sign_in.account_id.strip()
    login = sign_in.email.strip().lower() if sign_in.email else "passcode"
    keys = (login_key(account_id, login), client_key(client_of(request)))
    locked = await console.throttle.locked_for(keys)
    if locked is not None:
        minutes = max(1, round(locked / 60))
        raise ApiError(429, f"Too many failed sign-ins; try again in {minutes} minute(s)", retry_after=locked)
    user: ConsoleUser | None = None
    role: Role = "admin"
    if sign_in.passcode is not None:
        with credential_errors(context):
            account = await context.authenticator.authenticate_passcode(
                account_id, sign_in.passcode, client=client_of(request)
            )
    else:
        account = await context.store.get_account(account_id)
        user = await console.users.verify(account_id, email=login, password=sign_in.password or "")
        if user is None:
            account = None
        else:
            role = user.role
    if account is None:
        await console.throttle.failed([(keys[0], LOGIN_RULE), (keys[1], CLIENT_RULE)])
        if await context.store.get_account(account_id) is not None:
            await console.audit.record(
                account_id,
                actor=login,
                role="",
                action="session.refused",
                outcome="refused",
                client=client_of(request),
            )
        what = "passcode" if sign_in.passcode is not None else "email or password"
        raise ApiError(401, f"Account ID, {what} is not valid")
    if account.region != context.settings.region:
        raise ApiError(403, f"Account {account.id} belongs to region {account.region}; sign in there")
    await console.throttle.succeeded(keys[0])
    opened = await console.sessions.open(account.id, role=role, user=user)
    principal = Principal(
        account_id=account.id,
        role=role,
        actor=opened.session.actor,
        user_id=opened.session.user_id,
        session_id=opened.session.id,
    )
    await audit(request, console, "session.open", principal=principal)
    return json_response(_session_body(opened, console), status=201)


@router.delete("/sessions/current")
async def sign_out(request: Request, account: PasscodeAccount, console: Console) -> Response:
    principal = principal_of(request)
    if principal.session_id is None:
        raise ApiError(400, "this request was not made with a console session")
    token = request.headers["authorization"].split(None, 1)[1].strip()
    await console.sessions.close(token)
    await audit(request, console, "session.close")
    return json_response({"status": "success"})


@router.get("/me")
async def me(request: Request, account: PasscodeAccount, console: Console) -> Response:
    principal = principal_of(request)
    user = None if principal.user_id is None else await console.users.get(account.id, principal.user_id)
    return json_response(
        {
            "status": "success",
            "account": {"id": account.id, "region": account.region},
            "role": principal.role,
            "signed_in_with": "passcode" if user is None else "password",
            "user": None if user is None else user.to_json(),
        }
    )


def _own_user_id(request: Request) -> int:
    principal = principal_of(request)
    if principal.user_id is None:
        raise ApiError(409, "signed in with the account's passcode: tapwire holds no personal data about you")
    return principal.user_id


class MeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


@router.patch("/me")
async def change_me(request: Request, account: PasscodeAccount, console: Console) -> Response:
    change = await read_model(request, MeChange, _LIMITS)
    user_id = _own_user_id(request)
    try:
        user = await console.users.update(account.id, user_id, name=change.name, email=change.email)
    except UserExistsError as exc:
        raise ApiError(409, str(exc)) from exc
    await audit(
        request, console, "me.change", detail={"changed": sorted(change.model_dump(exclude_none=True))}
    )
    return json_response({"status": "success", "user": user.to_json()})


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


@router.post("/me/password")
async def change_password(request: Request, account: PasscodeAccount, console: Console) -> Response:
    """Every session of the person ends (signed out everywhere); the answer carries a fresh one for this browser."""
    change = await read_model(request, PasswordChange, _LIMITS)
    user_id = _own_user_id(request)
    try:
        user = await console.users.change_password(
            account.id, user_id, current=change.current_password, new=change.new_password
        )
    except PasswordRejectedError as exc:
        raise ApiError(422, str(exc)) from exc
    opened = await console.sessions.open(account.id, role=user.role, user=user)
    await audit(request, console, "me.password")
    return json_response(_session_body(opened, console))


@router.get("/me/export")
async def export_me(request: Request, account: PasscodeAccount, console: Console) -> Response:
    """Everything tapwire holds about the signed-in person: their user record and the actions they took."""
    user_id = _own_user_id(request)
    user = await console.users.get(account.id, user_id)
    actions = await console.audit.of_user(account.id, user_id)
    return json_response(
        {"status": "success", "user": user.to_json(), "actions": [entry.to_json() for entry in actions]}
    )


@router.delete("/me")
async def delete_me(request: Request, account: PasscodeAccount, console: Console) -> Response:
    """The person's console user is removed, their sessions end, and their audit entries keep the actions
    under a placeholder instead of their email."""
    user_id = _own_user_id(request)
    await console.users.delete(account.id, user_id)
    await console.audit.forget_user(account.id, user_id)
    await console.audit.record(
        account.id, actor=f"deleted user #{user_id}", role="", action="me.delete", client=client_of(request)
    )
    return json_response({"status": "success"})

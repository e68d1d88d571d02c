"""Authentication dependencies: CleverTap headers or a console session, region pinning, role checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from tapwire_core.control.accounts.directory import CredentialStoreUnavailable
from tapwire_core.control.accounts.failures import TooManyFailures
from tapwire_core.control.console.roles import CHANGES, Capability, Role, allows, capability_for
from tapwire_core.http.body import mark_authenticated
from tapwire_core.http.context import AccountView, ServiceContext
from tapwire_core.http.errors import ApiError

REGION_HOSTS = "{region}.api.clevertap.com"
BEARER = "bearer "
SELF_AUDITED = "/account/v1/"


async def service_context(request: Request) -> ServiceContext:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop on every request that
    # names the context (every upload), for a lookup of one attribute.
    context: ServiceContext = request.app.state.context
    return context


Context = Annotated[ServiceContext, Depends(service_context)]


@dataclass(frozen=True)
class Principal:
    """Who made a request: the account's passcode (every capability) or a console user with a role.

    Kept on ``request.state.principal``; ``session_id`` is set for console sessions only.
    """

    account_id: str
    role: Role
    actor: str
    user_id: int | None = None
    session_id: str | None = None

    @property
    def is_passcode(self) -> bool:
        return self.session_id is None


@dataclass(frozen=True)
class AuditIntent:
    """A changing request by a console session: the audit trail records it with its outcome once answered."""

    principal: Principal
    capability: Capability
    client: str


async def passcode_account(request: Request, context: Context) -> AccountView:
    """The account named by ``X-CleverTap-Account-Id`` whose passcode matches, or the account of the console
    session in ``Authorization: Bearer`` when its role may use this route (403 otherwise); 401 when neither.

    An account homed in another region gets 403 naming that region: its data may not be processed here.
    """
    authorization = request.headers.get("authorization", "")
    if authorization[: len(BEARER)].lower() == BEARER:
        account = await _session_account(request, context, authorization[len(BEARER) :].strip())
    else:
        account = await _passcode_account(request, context)
    if account.region != context.settings.region:
        raise ApiError(
            403,
            f"Account {account.id} belongs to region {account.region}; "
            f"send its requests to the {account.region} deployment",
        )
    mark_authenticated(request, account.id)
    return account


async def _passcode_account(request: Request, context: ServiceContext) -> AccountView:
    account_id = request.headers.get("x-clevertap-account-id", "").strip()
    passcode = request.headers.get("x-clevertap-passcode", "")
    if not account_id:
        raise ApiError(401, "Account ID is missing")
    if not passcode:
        raise ApiError(401, "Passcode is missing")
    with credential_errors(context):
        account = await context.authenticator.authenticate_passcode(
            account_id, passcode, client=client_address(request)
        )
    if account is None:
        raise ApiError(401, "Account ID or passcode is not valid")
    request.state.principal = Principal(account_id=account.id, role="admin", actor="passcode")
    return account


async def _session_account(request: Request, context: ServiceContext, token: str) -> AccountView:
    if context.console is None or not token:
        raise ApiError(401, "Console sessions are not accepted by this service")
    session = await context.console.sessions.resolve(token)
    if session is None:
        raise ApiError(401, "The session has ended; sign in again")
    account = await context.store.get_account(session.account_id)
    if account is None:
        raise ApiError(401, "The session's account no longer exists")
    principal = Principal(
        account_id=account.id,
        role=session.role,
        actor=session.actor,
        user_id=session.user_id,
        session_id=session.id,
    )
    request.state.principal = principal
    route = request.scope.get("route")
    capability = capability_for(request.method, getattr(route, "path", ""))
    if not allows(session.role, capability):
        raise ApiError(403, f"The {session.role} role may not do this ({capability})")
    # The account administration API writes its own, more telling, entries.
    if capability in CHANGES and not getattr(route, "path", "").startswith(SELF_AUDITED):
        request.state.audit = AuditIntent(
            principal=principal, capability=capability, client=client_address(request)
        )
    return account


def principal_of(request: Request) -> Principal:
    """The principal an authenticating dependency recorded for this request."""
    principal: Principal = request.state.principal
    return principal


PasscodeAccount = Annotated[AccountView, Depends(passcode_account)]


def client_address(request: Request) -> str:
    """The client's address as the request saw it (the trusted-proxy middleware has rewritten it already)."""
    return request.client.host if request.client else "unknown"


@contextmanager
def credential_errors(context: ServiceContext) -> Iterator[None]:
    """Authenticator failures as client-visible errors: 429 for a client over its failure limit, 503 when the
    credential store cannot answer; both with ``Retry-After``."""
    try:
        yield
    except TooManyFailures as exc:
        raise ApiError(
            429,
            "Too many failed authentications from this address; retry later",
            retry_after=exc.retry_after_s,
        ) from None
    except CredentialStoreUnavailable:
        raise ApiError(
            503,
            "Authentication is temporarily unavailable; retry later",
            retry_after=context.settings.retry_after_s,
        ) from None

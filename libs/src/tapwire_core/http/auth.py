"""Authentication dependencies: CleverTap headers, region pinning."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Request

from tapwire_core.control.accounts.directory import CredentialStoreUnavailable
from tapwire_core.control.accounts.failures import TooManyFailures
from tapwire_core.http.body import mark_authenticated
from tapwire_core.http.context import AccountView, ServiceContext
from tapwire_core.http.errors import ApiError

REGION_HOSTS = "{region}.api.clevertap.com"


def service_context(request: Request) -> ServiceContext:
    context: ServiceContext = request.app.state.context
    return context


Context = Annotated[ServiceContext, Depends(service_context)]


async def passcode_account(request: Request, context: Context) -> AccountView:
    """The account named by ``X-CleverTap-Account-Id`` whose passcode matches; 401 otherwise.

    An account homed in another region gets 403 naming that region: its data may not be processed here.
    """
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
    if account.region != context.settings.region:
        raise ApiError(
            403,
            f"Account {account.id} belongs to region {account.region}; "
            f"send its requests to the {account.region} deployment",
        )
    mark_authenticated(request, account.id)
    return account


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

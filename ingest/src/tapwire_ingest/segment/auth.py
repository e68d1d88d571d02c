"""Which account a Segment-style request is for: HTTP Basic (write key as user name) or ``writeKey`` in the body."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request

from tapwire_core.control.accounts.hashing import write_key_digest
from tapwire_core.http.context import AccountView, ServiceContext
from tapwire_core.http.errors import ApiError


def write_key_of(request: Request, payload: Any) -> str:
    """The write key: the user name of an ``Authorization: Basic`` header (it wins over the body, as Segment
    recommends), else the body's ``writeKey`` (also with a Bearer header, Segment's OAuth mode). 401 when
    neither gives one."""
    header = request.headers.get("authorization")
    scheme, _, credentials = (header or "").strip().partition(" ")
    # Segment's OAuth mode sends "Bearer <token>" with the write key in the body: the body names the source.
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ApiError(401, "Authorization header is not valid Basic credentials") from exc
        # "key:" is what the SDKs send; a bare "key" (no colon) is accepted for older clients.
        key = decoded.partition(":")[0]
        if key:
            return key
    body_key = payload.get("writeKey") if type(payload) is dict else None
    if type(body_key) is str and body_key:
        return body_key
    if scheme and scheme.lower() != "basic":
        raise ApiError(401, "Authorization must be HTTP Basic with the write key as user name")
    raise ApiError(401, "Write key is missing: send it as the Basic user name or as writeKey in the body")


async def write_key_account(context: ServiceContext, write_key: str) -> AccountView:
    """The account holding the write key; 401 when unknown, 403 when homed in another region."""
    account = await context.authenticator.authenticate_write_key(write_key)
    if account is None:
        raise ApiError(401, "Invalid write key")
    if account.region != context.settings.region:
        raise ApiError(
            403,
            f"Account {account.id} belongs to region {account.region}; "
            f"send its events to the {account.region} deployment",
        )
    return account


def key_scope(write_key: str) -> bytes:
    """A stable, non-secret name for the write key: message ids are deduplicated per write key."""
    return bytes.fromhex(write_key_digest(write_key))

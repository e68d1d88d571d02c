"""Which account a Segment-style request is for: HTTP Basic (write key as user name) or ``writeKey`` in the body.

The header is read before the body, so a request with a wrong key in its header costs no body read. A key carried
in the body (analytics.js sends ``text/plain`` bodies to avoid a CORS preflight) is found without decoding the
rest: ``msgspec`` skips every other member of the object.
"""

from __future__ import annotations

import base64
import binascii

import msgspec
from starlette.requests import Request

from tapwire_core.http.auth import client_address, credential_errors
from tapwire_core.http.body import mark_authenticated
from tapwire_core.http.context import AccountView, ServiceContext
from tapwire_core.http.errors import ApiError


class _KeyOnly(msgspec.Struct):
    writeKey: str | None = None  # the wire name


_KEY_ONLY = msgspec.json.Decoder(_KeyOnly)


def header_write_key(request: Request) -> str | None:
    """The user name of an ``Authorization: Basic`` header (it wins over the body, as Segment recommends); None
    when the header gives none (no header, an empty user name, or Segment's OAuth mode, whose "Bearer <token>"
    leaves the write key to the body). 401 for Basic credentials that do not decode."""
    scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(401, "Authorization header is not valid Basic credentials") from exc
    # "key:" is what the SDKs send; a bare "key" (no colon) is accepted for older clients.
    return decoded.partition(":")[0] or None


def body_write_key(request: Request, body: bytes) -> str:
    """The body's ``writeKey``, decoding nothing else; 401 when there is none, 400 when the body is not JSON."""
    try:
        key = _KEY_ONLY.decode(body).writeKey
    except msgspec.ValidationError:
        key = None  # not an object, or a writeKey that is not a string
    except msgspec.DecodeError as exc:
        raise ApiError(400, "Malformed JSON body") from exc
    if key:
        return key
    scheme = request.headers.get("authorization", "").strip().partition(" ")[0]
    if scheme and scheme.lower() != "basic":
        raise ApiError(401, "Authorization must be HTTP Basic with the write key as user name")
    raise ApiError(401, "Write key is missing: send it as the Basic user name or as writeKey in the body")


async def write_key_account(request: Request, context: ServiceContext, write_key: str) -> AccountView:
    """The account holding the write key; 401 when unknown, 403 when homed in another region."""
    with credential_errors(context):
        account = await context.authenticator.authenticate_write_key(
            write_key, client=client_address(request)
        )
    if account is None:
        raise ApiError(401, "Invalid write key")
    if account.region != context.settings.region:
        raise ApiError(
            403,
            f"Account {account.id} belongs to region {account.region}; "
            f"send its events to the {account.region} deployment",
        )
    mark_authenticated(request, account.id)
    return account

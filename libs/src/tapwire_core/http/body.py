"""The one way every service reads a request body: capped on the wire, capped after inflating, its JSON measured
before it is decoded, and all of it charged to the process's body budget.

It reads only once the request is authenticated (``mark_authenticated``, called by the credential checks): an
anonymous caller must cost no body read, and a route that tried to read first fails loudly. The few public routes
say ``public=True``, get small limits and are charged to the client's address.

What each step refuses (the error shape of ``ApiError``):
- 413 once the body passes ``max_bytes`` on the wire (a declared ``Content-Length`` past it before reading);
- 415 for a ``Content-Encoding`` other than gzip or deflate, 400 for broken compressed data, 413 once the inflated
  body passes ``max_inflated`` (inflated in steps, so a "zip bomb" stops at the cap);
- 413 past ``max_values`` JSON values, 400 past ``max_depth`` levels of nesting, 400 for malformed JSON
  (RFC 8259: no NaN or Infinity, valid UTF-8; a repeated key keeps its last value);
- 429 with ``Retry-After`` when the process's body budget or the owner's share of it is spent.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from tapwire_core.http.body_budget import SCOPE_KEY, BodyTicket, decoded_estimate
from tapwire_core.http.errors import ApiError
from tapwire_core.http.json_shape import JsonTooDeep, JsonTooLarge, check_shape

_INFLATE_STEP = 1024 * 1024
Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """What one route accepts. ``max_values`` counts the top value, every array element and every object member."""

    max_bytes: int
    max_inflated: int
    max_values: int
    max_depth: int
    what: str = "Request body"


ACCOUNT_KEY: Final = "tapwire.account"


class UnauthenticatedRead(RuntimeError):
    """A route read a body before authenticating the request: a bug, never a client's fault."""


def mark_authenticated(request: Request, account_id: str) -> None:
    """Record that ``request`` is ``account_id``'s: its body may now be read, and is charged to that account."""
    request.scope[ACCOUNT_KEY] = account_id


def body_owner(request: Request, *, public: bool = False) -> str:
    """Who pays for the body: the authenticated account, or the client's address on a public route."""
    account_id: str | None = request.scope.get(ACCOUNT_KEY)
    if account_id is not None:
        return account_id
    if not public:
        raise UnauthenticatedRead(f"{request.url.path} read its body before authenticating the request")
    return f"client:{request.client.host if request.client else 'unknown'}"


async def read_body(request: Request, limits: BodyLimits, *, public: bool = False) -> bytes:
    """The body's bytes, inflated when ``Content-Encoding`` says gzip or deflate."""
    owner = body_owner(request, public=public)
    ticket = body_ticket(request)
    raw = await _read_capped(request, limits, ticket, owner)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ApiError(415, f"Unsupported Content-Encoding {encoding!r}")
    inflated = await _inflate(raw, gzip=encoding != "deflate", limits=limits, ticket=ticket, owner=owner)
    if ticket is not None:
        ticket.refund(len(raw))  # the compressed bytes are dropped on return
    return inflated


def check_json_shape(body: bytes, limits: BodyLimits, *, ticket: BodyTicket | None = None) -> int:
    """How many JSON values ``body`` holds at most; 400 when blank or nested too deep, 413 past ``max_values``.

    The measure copies the text's structure at most twice while it runs; that is charged to ``ticket``, then
    returned."""
    if not body.strip():
        raise ApiError(400, f"{limits.what} is empty")
    scratch = 2 * len(body)
    if ticket is not None:
        ticket.charge(scratch)
    try:
        return check_shape(body, max_values=limits.max_values, max_depth=limits.max_depth)
    except JsonTooLarge as exc:
        raise ApiError(413, f"{exc}; send fewer or smaller records per request") from None
    except JsonTooDeep as exc:
        raise ApiError(400, str(exc)) from None
    finally:
        if ticket is not None:
            ticket.refund(scratch)


def decode_json(body: bytes, limits: BodyLimits, *, ticket: BodyTicket | None = None) -> Any:
    """``body`` decoded once its shape is within ``limits`` and its decoded size is charged to ``ticket``."""
    values = check_json_shape(body, limits, ticket=ticket)
    if ticket is not None:
        ticket.charge(decoded_estimate(len(body), values))
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Malformed JSON: {exc.msg}") from None


@dataclass(frozen=True, slots=True)
class JsonBody:
    """A decoded body with the bytes it was decoded from (e.g. to derive stable ids from the request)."""

    text: bytes
    value: Any


async def read_json_body(request: Request, limits: BodyLimits, *, public: bool = False) -> JsonBody:
    body = await read_body(request, limits, public=public)
    return JsonBody(body, decode_json(body, limits, ticket=body_ticket(request)))


async def read_json(request: Request, limits: BodyLimits, *, public: bool = False, empty: Any = None) -> Any:
    """The body decoded as JSON; ``empty`` for a blank body when given (400 otherwise)."""
    body = await read_body(request, limits, public=public)
    if empty is not None and not body.strip():
        return empty
    return decode_json(body, limits, ticket=body_ticket(request))


async def read_object(request: Request, limits: BodyLimits, *, public: bool = False) -> dict[str, Any]:
    """The body as a JSON object; 400 for any other JSON value."""
    payload = await read_json(request, limits, public=public)
    if type(payload) is not dict:
        raise ApiError(400, f"{limits.what} must be a JSON object")
    return payload


async def read_model(
    request: Request, model: type[Model], limits: BodyLimits, *, public: bool = False
) -> Model:
    """The body validated as ``model``; 422 naming the first invalid field."""
    return validate_model(model, await read_json(request, limits, public=public))


def validate_model(model: type[Model], payload: Any) -> Model:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        raise ApiError(422, f"{where}: {first.get('msg', 'invalid')}") from None


def body_ticket(request: Request) -> BodyTicket | None:
    """The request's share of the body budget (None in an app built without ``create_app``)."""
    ticket: BodyTicket | None = request.scope.get(SCOPE_KEY)
    return ticket


async def _read_capped(request: Request, limits: BodyLimits, ticket: BodyTicket | None, owner: str) -> bytes:
    too_large = ApiError(413, f"{limits.what} may hold at most {limits.max_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_bytes:
            raise too_large
        if ticket is not None:
            ticket.charge(len(chunk), owner)
        chunks.append(chunk)
    return _joined(chunks, size, ticket, owner)


async def _inflate(
    body: bytes, *, gzip: bool, limits: BodyLimits, ticket: BodyTicket | None, owner: str
) -> bytes:
    """Decompress step by step, charging each step, so a small "zip bomb" stops at the cap; between steps other
    requests get the event loop (a 20 MiB body would otherwise hold it for tens of milliseconds)."""
    inflater = zlib.decompressobj(wbits=31 if gzip else 15)
    parts: list[bytes] = []
    size = 0
    pending = body
    while True:
        try:
            out = inflater.decompress(pending, _INFLATE_STEP)
        except zlib.error as exc:
            raise ApiError(400, f"Body is not valid {'gzip' if gzip else 'deflate'} data") from exc
        size += len(out)
        if size > limits.max_inflated:
            raise ApiError(413, f"Decompressed body is larger than {limits.max_inflated} bytes")
        if ticket is not None:
            ticket.charge(len(out), owner)
        parts.append(out)
        pending = inflater.unconsumed_tail
        if inflater.eof or (not pending and len(out) < _INFLATE_STEP):
            break
        await asyncio.sleep(0)
    if not inflater.eof:
        raise ApiError(400, "Compressed body is truncated")
    return _joined(parts, size, ticket, owner)


def _joined(parts: list[bytes], size: int, ticket: BodyTicket | None, owner: str) -> bytes:
    """The parts as one bytes object; the copy is charged while the parts and the copy both exist."""
    if len(parts) == 1:
        return parts[0]
    if ticket is not None:
        ticket.charge(size, owner)
    joined = b"".join(parts)
    parts.clear()
    if ticket is not None:
        ticket.refund(size)
    return joined

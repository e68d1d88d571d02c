"""Reading request bodies with hard caps: compressed size, inflated size, JSON well-formedness."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.requests import Request

from tapwire_core.http.bounded_body import read_bounded
from tapwire_core.http.errors import ApiError


async def read_body(request: Request, *, max_bytes: int, max_inflated: int) -> bytes:
    """The request body, gunzipped when ``Content-Encoding: gzip``. 413 past either cap, 400 on bad gzip.

    Reads incrementally so an oversized upload is refused without being buffered whole.
    """
    body = await read_bounded(request, max_bytes)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ApiError(415, f"Unsupported Content-Encoding {encoding!r}")
    return inflate(body, gzip=encoding != "deflate", max_inflated=max_inflated)


def inflate(body: bytes, *, gzip: bool, max_inflated: int) -> bytes:
    """Decompress with a cap, so a small "zip bomb" cannot expand into gigabytes of memory."""
    inflater = zlib.decompressobj(wbits=31 if gzip else 15)
    try:
        out = inflater.decompress(body, max_inflated + 1)
    except zlib.error as exc:
        raise ApiError(400, f"Body is not valid {'gzip' if gzip else 'deflate'} data") from exc
    if len(out) > max_inflated or inflater.unconsumed_tail:
        raise ApiError(413, f"Decompressed body is larger than {max_inflated} bytes")
    if not inflater.eof:
        raise ApiError(400, "Compressed body is truncated")
    return out


def parse_json(body: bytes) -> Any:
    """Strict JSON (RFC 8259): no NaN/Infinity, valid UTF-8 only. Duplicate keys: the last one wins."""
    if not body.strip():
        raise ApiError(400, "Request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Malformed JSON: {exc.msg}") from exc

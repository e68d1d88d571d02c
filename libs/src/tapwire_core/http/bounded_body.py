"""Reading a request body without ever buffering more than a cap."""

from __future__ import annotations

from starlette.requests import Request

from tapwire_core.http.errors import ApiError


async def read_bounded(request: Request, max_bytes: int, *, what: str = "Request body") -> bytes:
    """The raw body; 413 as soon as it passes ``max_bytes`` (a declared Content-Length past it is refused
    before reading), so an oversized body is never held whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"{what} may hold at most {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"{what} may hold at most {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)

"""One Web SDK request (``GET /a?t=96&type=…&d=…&gc=…&rn=…``) read into plain values, with hard caps.

What ``clevertap.js`` (2.5.x) puts in the URL: ``type`` (``page``, ``push``, ``ping`` or ``data``), ``d`` (the
payload, see ``lz``), ``gc`` (the device id once it has one; ``d.g`` carries it too, except in requests built
before the first answer), ``rn`` (the request number the answer must name, so the SDK drops its backup copy),
``i`` and ``sn`` (when the request was saved, in seconds, and its place in that second), ``s`` (the session,
appended to requests replayed from the backup queue), ``optOut`` (privacy requests), ``useIP``, ``origin``,
``tries``, ``r`` (cache buster), ``arp`` and ``ct_pl``; the last five are not read here (the page's origin is
checked from the request's headers). Only the payload names the account (``d.id``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import unquote

import orjson

from tapwire_core.http.errors import ApiError
from tapwire_ingest.clevertap_sdk.lz import LzDecodeError, LzTooLarge, decompress_from_base64

RequestType = Literal["page", "push", "ping", "data"]
_TYPES: Final[frozenset[str]] = frozenset({"page", "push", "ping", "data"})
# The SDK's own device ids are 32 hex digits; custom ids (``config.customId``) are 1-64 of these characters
# behind a ``_w_`` prefix. ``:OO`` marks a device whose user opted out.
DEVICE_ID: Final = re.compile(r"[A-Za-z0-9()!:@$_-]{1,72}")
OPT_OUT_SUFFIX: Final = ":OO"
_MAX_INT: Final = 2**53
_READ: Final = frozenset({"type", "d", "gc", "s", "rn", "i", "sn", "optOut", "useIP"})


# Not frozen: a frozen dataclass sets each of its fields through object.__setattr__, which made building this
# one a few microseconds of every request. Nothing changes it once parsed.
@dataclass(slots=True)
class WebRequest:
    type: RequestType
    payload: dict[str, Any]
    raw_payload: str
    device_id: str | None
    """As sent, without an opt-out suffix; None when the browser has none yet."""
    device_opted_out: bool
    """The device id carried the opt-out suffix."""
    session_id: int | None
    request_number: int
    saved_at_s: int | None
    sequence: int | None
    opt_out: bool | None
    use_ip: bool

    @property
    def reset_device(self) -> bool:
        """``rc``: the SDK cleared its cookies (another user logs in) and asks for a new device id."""
        return self.payload.get("rc") is True


def parse_web_request(raw_query: bytes, *, max_query_bytes: int, max_payload_chars: int) -> WebRequest:
    """Read the query string. Raises ApiError 413 past a cap, 400 for anything the SDK would not send."""
    if len(raw_query) > max_query_bytes:
        raise ApiError(413, f"Query string is longer than {max_query_bytes} bytes")
    params = _read_params(raw_query)
    kind = params.get("type", "")
    if kind not in _TYPES:
        raise ApiError(400, "type must be page, push, ping or data")
    encoded = params.get("d")
    if not encoded:
        raise ApiError(400, "d is missing")
    if "%" in encoded:
        # The SDK encodes only base64's "+", "/" and "=" (encodeURIComponent); anything else goes through the
        # general decoder. A replacement cannot start another escape: "+", "/" and "=" are not hex digits.
        encoded = encoded.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")
        if "%" in encoded:
            encoded = unquote(encoded, errors="replace")
    # Percent-decoding keeps "+"; a client that sent base64 unencoded in a form-encoded way gives spaces.
    encoded = encoded.replace(" ", "+")
    try:
        text = decompress_from_base64(encoded, max_chars=max_payload_chars)
    except LzTooLarge as exc:
        raise ApiError(413, f"d expands past {max_payload_chars} characters") from exc
    except LzDecodeError as exc:
        raise ApiError(400, f"d is not a compressed payload: {exc}") from exc
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "d does not hold a JSON object") from exc
    if type(payload) is not dict:
        raise ApiError(400, "d does not hold a JSON object")
    device, opted_out = _device_id(payload.get("g"), params.get("gc"))
    return WebRequest(
        type=kind,  # type: ignore[arg-type]  # checked against _TYPES above
        payload=payload,
        raw_payload=text,
        device_id=device,
        device_opted_out=opted_out,
        session_id=_integer(payload.get("s")) or _integer(params.get("s")),
        request_number=_integer(params.get("rn")) or 0,
        saved_at_s=_integer(params.get("i")),
        sequence=_integer(params.get("sn")),
        opt_out=_flag(params.get("optOut")),
        use_ip=params.get("useIP") == "true",
    )


def _read_params(raw_query: bytes) -> dict[str, str]:
    """``literal_params`` of the parameters read here only: the SDK's others (``r``, ``tries``, ``arp``…)
    are not percent-decoded for nothing on every request."""
    params: dict[str, str] = {}
    for pair in raw_query.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        if "%" in key:
            key = unquote(key, errors="replace")
        if key in _READ and key not in params:
            # d is decoded by the caller, where its few escapes have a cheaper way.
            params[key] = unquote(value, errors="replace") if "%" in value and key != "d" else value
    return params


def _device_id(in_payload: Any, in_url: str | None) -> tuple[str | None, bool]:
    value = in_payload if type(in_payload) is str and in_payload else in_url
    if not value:
        return None, False
    if not DEVICE_ID.fullmatch(value):
        raise ApiError(400, "The device id (g or gc) is not one the SDK issues")
    if value.endswith(OPT_OUT_SUFFIX):
        return value[: -len(OPT_OUT_SUFFIX)] or None, True
    return value, False


def _integer(value: Any) -> int | None:
    """A non-negative integer from JSON or the URL, else None (the SDK's own values are never refused)."""
    if type(value) is int:
        return value if 0 <= value < _MAX_INT else None
    if type(value) is str and value.isascii() and value.isdigit() and len(value) < 16:
        return int(value)
    return None


def _flag(value: str | None) -> bool | None:
    if value == "true":
        return True
    if value == "false":
        return False
    return None

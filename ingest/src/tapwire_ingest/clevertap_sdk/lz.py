"""Decoding the Web SDK's ``d`` parameter: LZ-based ``compressToBase64`` of a JSON text.

The SDK (``clevertap-web-sdk``, ``compress`` and ``compressToBase64`` in ``clevertap.js``) runs lz-string's
dictionary coder over the UTF-16 code units of ``JSON.stringify(payload)``, emitting 16-bit characters, and
writes those characters as big-endian bytes in standard base64. Later lz-string versions write the same bit
stream six bits per character; both decode here, since the stream ends at its own end marker.

Written here rather than taken from a package: the decoder runs before the request names a known account, on
input anyone can send, so it must stop at a size cap *while* it expands (a few hundred bytes of LZ codes can
describe megabytes) and must refuse truncated or inconsistent streams instead of returning a prefix; the
packaged ports of lz-string do neither. The loop itself is C (``_lzdecode.c``, built with the package): in
Python it was a quarter of a Web SDK request's CPU, about 60 µs of a one-event payload against about 2 µs
(docs/benchmarks.md).
"""

from __future__ import annotations

import binascii
from typing import Final

from tapwire_ingest.clevertap_sdk import _lzdecode


class LzDecodeError(ValueError):
    """``d`` is not a complete, well-formed compressed text."""


class LzTooLarge(LzDecodeError):
    """The text ``d`` describes is longer than the caller's cap."""


def decompress_from_base64(encoded: str, *, max_chars: int) -> str:
    """The text ``encoded`` holds, as a Python string (UTF-16 surrogate pairs joined).

    Raises ``LzTooLarge`` as soon as the output would pass ``max_chars`` UTF-16 code units, and
    ``LzDecodeError`` on anything that is not a complete stream (bad characters, truncation, a code that names
    no dictionary entry, an unpaired surrogate).
    """
    stripped = encoded.rstrip("=")
    if not stripped:
        raise LzDecodeError("d is empty")
    try:
        # Strict: only the base64 alphabet, no padding inside. Zero bits after the stream's end marker change
        # nothing, so the text is padded to whole base64 quanta with "A".
        raw = binascii.a2b_base64(stripped + "A" * (-len(stripped) % 4), strict_mode=True)
    except ValueError as exc:  # binascii.Error, or a character outside ASCII
        raise LzDecodeError("d is not base64") from exc
    return _decompress(raw, max_chars)


def _decompress(raw: bytes, max_chars: int) -> str:
    """lz-string's ``_decompress`` over the bits of ``raw``, most significant bit of the first byte first,
    surrogate pairs joined (``_lzdecode.c``)."""
    decoded = _lzdecode.decompress(raw, max_chars)
    if isinstance(decoded, str):
        return decoded
    refusal, reason = _REFUSALS[decoded]
    raise refusal(reason.format(max_chars=max_chars))


# The C decoder's refusals (its int results), as the exception and message each one means.
_REFUSALS: Final[dict[int, tuple[type[LzDecodeError], str]]] = {
    1: (LzDecodeError, "d is truncated"),
    2: (LzDecodeError, "d does not start with a literal"),
    3: (LzDecodeError, "d names an unknown dictionary entry"),
    4: (LzTooLarge, "d expands past {max_chars} characters"),
    5: (LzDecodeError, "d holds an unpaired UTF-16 surrogate"),
}

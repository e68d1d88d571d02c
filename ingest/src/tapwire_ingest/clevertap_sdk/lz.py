"""Decoding the Web SDK's ``d`` parameter: LZ-based ``compressToBase64`` of a JSON text.

The SDK (``clevertap-web-sdk``, ``compress`` and ``compressToBase64`` in ``clevertap.js``) runs lz-string's
dictionary coder over the UTF-16 code units of ``JSON.stringify(payload)``, emitting 16-bit characters, and
writes those characters as big-endian bytes in standard base64. Later lz-string versions write the same bit
stream six bits per character; both decode here, since the stream ends at its own end marker.

Written here rather than taken from a package: the decoder runs before the request names a known account, on
input anyone can send, so it must stop at a size cap *while* it expands (a few hundred bytes of LZ codes can
describe megabytes) and must refuse truncated or inconsistent streams instead of returning a prefix; the
Python ports of lz-string do neither, and read the stream bit by bit, several times slower than the loop below
(docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Final

_ALPHABET: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
# Each byte with its bits in reverse order: the coder writes the stream most significant bit first, and reads
# of codes are cheapest on integers whose bit i is the stream's bit i.
_REVERSED_BITS: Final = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))
_WORD_BITS: Final = 64


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
    if not _ALPHABET.issuperset(stripped):
        raise LzDecodeError("d is not base64")
    # Zero bits after the stream's end marker change nothing: pad to whole base64 quanta.
    stripped += "A" * (-len(stripped) % 4)
    try:
        raw = base64.b64decode(stripped, validate=True)
    except binascii.Error as exc:  # pragma: no cover - the alphabet check above rules this out
        raise LzDecodeError("d is not base64") from exc
    return _decompress(raw, max_chars)


def _decompress(raw: bytes, max_chars: int) -> str:
    """lz-string's ``_decompress`` over the bits of ``raw``, most significant bit of the first byte first.

    The coder writes each code least significant bit first. The stream is cut into 64-bit words whose bit ``i``
    is the stream's bit ``i``, and codes are taken from the low end of ``buffer``, a small integer refilled one
    word at a time, so a read is a mask and a shift on a number of at most 80 bits (shifting the whole stream as
    one integer, as before, cost a copy of it per code). Reads are inlined: this loop runs once per code on
    every Web SDK request.
    """
    total = len(raw) * 8
    if total < 2:
        raise LzDecodeError("d is truncated")
    padded = raw.translate(_REVERSED_BITS) + bytes(-len(raw) % 8)
    words = struct.unpack(f"<{len(padded) // 8}Q", padded)
    count = len(words)
    # The bits each word holds: the last one's padding is not part of the stream.
    sizes = (_WORD_BITS,) * (count - 1) + (total - _WORD_BITS * (count - 1),)
    buffer = words[0]
    available = sizes[0]
    index = 1
    first = buffer & 3
    buffer >>= 2
    available -= 2
    if first == 2:
        return ""
    if first > 2:
        raise LzDecodeError("d does not start with a literal")
    width = 8 if first == 0 else 16
    if available < width:
        if index == count:
            raise LzDecodeError("d is truncated")
        buffer |= words[index] << available
        available += sizes[index]
        index += 1
    literal = buffer & ((1 << width) - 1)
    buffer >>= width
    available -= width
    surrogates = 0xD800 <= literal <= 0xDFFF
    w = chr(literal)
    dictionary: list[str] = ["", "", "", w]
    append = dictionary.append
    out = [w]
    emit = out.append
    length = 1
    enlarge_in = 4
    num_bits = 3
    mask = 7
    while True:
        if available < num_bits:
            if index == count:
                raise LzDecodeError("d is truncated")
            buffer |= words[index] << available
            available += sizes[index]
            index += 1
        code = buffer & mask
        buffer >>= num_bits
        available -= num_bits
        if code > 2:
            try:
                entry = dictionary[code]
            except IndexError:
                # The one code past the dictionary: the entry the coder was still building (``w`` + its
                # own first character).
                if code != len(dictionary):
                    raise LzDecodeError("d names an unknown dictionary entry") from None
                entry = w + w[0]
        elif code == 2:
            text = "".join(out)
            return _joined_surrogates(text) if surrogates else text
        else:
            width = 8 if code == 0 else 16
            if available < width:
                if index == count:
                    raise LzDecodeError("d is truncated")
                buffer |= words[index] << available
                available += sizes[index]
                index += 1
            literal = buffer & ((1 << width) - 1)
            buffer >>= width
            available -= width
            if 0xD800 <= literal <= 0xDFFF:
                surrogates = True
            entry = chr(literal)
            append(entry)
            enlarge_in -= 1
            if not enlarge_in:
                enlarge_in = 1 << num_bits
                num_bits += 1
                mask = (1 << num_bits) - 1
        length += len(entry)
        if length > max_chars:
            raise LzTooLarge(f"d expands past {max_chars} characters")
        emit(entry)
        append(w + entry[0])
        w = entry
        enlarge_in -= 1
        if not enlarge_in:
            enlarge_in = 1 << num_bits
            num_bits += 1
            mask = (1 << num_bits) - 1


def _joined_surrogates(units: str) -> str:
    try:
        return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise LzDecodeError("d holds an unpaired UTF-16 surrogate") from exc

"""How many values a JSON text holds and how deep it nests, measured on its bytes before anything is decoded.

Decoding builds a Python object per value: ``{},`` (3 bytes) becomes a 64-byte dict plus a list slot, so a
20 MiB body of tiny objects costs ~700 MiB once parsed. The parser offers no limit but its own 1,024 levels of
nesting, and a typed ``msgspec`` decode checks a list's length only after building it; so the bounds are checked
here, on the text, at C speed (``bytes.translate``/``count``/``split``; no Python loop per byte).

The measure is exact for valid JSON (a property test checks it against the decoded value); for invalid JSON it is
meaningless, and the parser refuses the text next. Measured on a 13 KB, 100-record upload: the shape costs about
half of what ``orjson.loads`` costs on the same text (docs/benchmarks.md, "Hostile bodies").
"""

from __future__ import annotations

from array import array
from itertools import accumulate

# The bytes that carry structure. Everything else (letters, digits, ':' and whitespace) is dropped first, so the
# work after the first pass is proportional to the number of values, not to the body's size.
_STRUCTURE = b'[]{},"'
_DROP = bytes(c for c in range(256) if c not in _STRUCTURE)
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


class JsonTooLarge(Exception):
    """The text holds more values than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON body holds more than {limit} values")
        self.limit = limit


class JsonTooDeep(Exception):
    """The text nests arrays and objects deeper than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON body nests more than {limit} levels deep")
        self.limit = limit


def check_shape(body: bytes, *, max_values: int, max_depth: int) -> int:
    """An upper bound of the values ``body`` decodes to (the top value, every array element and object member;
    exact but for empty containers, which count one); raises JsonTooLarge past ``max_values`` and JsonTooDeep past
    ``max_depth`` levels of arrays and objects. Never decodes, never raises anything else."""
    skeleton = _without_escapes(body).translate(None, _DROP)
    opens = skeleton.count(b"[") + skeleton.count(b"{")
    values = opens + skeleton.count(b",") + 1
    structure: bytes | None = None
    if values > max_values:
        # Commas and brackets inside strings were counted: count again outside them before refusing.
        structure = _outside_strings(skeleton, max_values)
        opens = structure.count(b"[") + structure.count(b"{")
        values = opens + structure.count(b",") + 1
        if values > max_values:
            raise JsonTooLarge(max_values)
    if opens > max_depth:
        _check_depth(_brackets(skeleton, structure, max_values), max_depth)
    return values


def _without_escapes(body: bytes) -> bytes:
    """``body`` without its escaped backslashes and quotes, so every remaining ``"`` opens or closes a string.

    Only the strings' contents change, which are not measured (``\\\\`` goes first: ``\\\\"`` ends a string).
    """
    if b"\\" not in body:
        return body
    return body.replace(b"\\\\", b"").replace(b'\\"', b"")


def _outside_strings(skeleton: bytes, max_values: int) -> bytes:
    """The skeleton's structure outside string literals. Every string is a key or a value, so more than twice
    ``max_values`` strings means too many values, and the split below never makes more pieces than that."""
    quotes = skeleton.count(b'"')
    if quotes // 2 > 2 * max_values + 1:
        raise JsonTooLarge(max_values)
    if not quotes:
        return skeleton
    # Even pieces lie outside strings. Most pieces are empty or one byte, which CPython shares rather than allocates.
    return b"".join(skeleton.split(b'"')[0::2])


def _brackets(skeleton: bytes, structure: bytes | None, max_values: int) -> bytes:
    if structure is None:
        # Usual case: no string holds a bracket or a quote, so each string is an adjacent pair of quotes here.
        brackets = skeleton.translate(None, b",").replace(b'""', b"")
        if b'"' not in brackets:
            return brackets
        structure = _outside_strings(skeleton, max_values)
    return structure.translate(None, b",")


def _check_depth(brackets: bytes, max_depth: int) -> None:
    # Each opening bracket steps +1 and each closing one -1 (signed bytes); the deepest point is the largest sum.
    deepest = max(accumulate(array("b", brackets.translate(_DEPTH_STEP))), default=0)
    if deepest > max_depth:
        raise JsonTooDeep(max_depth)

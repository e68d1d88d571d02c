"""lz-string's ``_decompress`` as the JavaScript reads it, one bit at a time: the yardstick for the production
decoder (``tapwire_ingest.clevertap_sdk.lz``), whose loop is C (``_lzdecode.c``). Same strictness: a code that
runs past the last bit, names no dictionary entry or passes the size cap is an error, never a prefix."""

from __future__ import annotations


class Truncated(ValueError):
    pass


class UnknownCode(ValueError):
    pass


class TooLarge(ValueError):
    pass


def decompress(raw: bytes, max_chars: int) -> str:
    """The UTF-16 code units ``raw`` describes, most significant bit of the first byte first, unjoined."""
    bits = [(byte >> (7 - i)) & 1 for byte in raw for i in range(8)]
    position = 0

    def read(width: int) -> int:
        nonlocal position
        if position + width > len(bits):
            raise Truncated
        value = 0
        for power in range(width):
            value |= bits[position + power] << power
        position += width
        return value

    first = read(2)
    if first == 2:
        return ""
    if first == 3:
        raise UnknownCode
    w = chr(read(8 if first == 0 else 16))
    dictionary = ["", "", "", w]
    out = [w]
    length = 1
    enlarge_in, num_bits = 4, 3
    while True:
        code = read(num_bits)
        if code in (0, 1):
            dictionary.append(chr(read(8 if code == 0 else 16)))
            code = len(dictionary) - 1
            enlarge_in -= 1
            if enlarge_in == 0:
                enlarge_in, num_bits = 1 << num_bits, num_bits + 1
        elif code == 2:
            return "".join(out)
        if code < len(dictionary):
            entry = dictionary[code]
        elif code == len(dictionary):
            entry = w + w[0]
        else:
            raise UnknownCode
        length += len(entry)
        if length > max_chars:
            raise TooLarge
        out.append(entry)
        dictionary.append(w + entry[0])
        enlarge_in -= 1
        w = entry
        if enlarge_in == 0:
            enlarge_in, num_bits = 1 << num_bits, num_bits + 1

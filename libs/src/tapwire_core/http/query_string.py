"""Query-string parsing that keeps a literal ``+``.

CleverTap's official clients put identities into the URL without encoding them, so a phone identity
``+14155551234`` arrives with a raw ``+``; form decoding would turn it into a space.
"""

from __future__ import annotations

from urllib.parse import unquote


def literal_params(raw_query: bytes) -> dict[str, str]:
    """Percent-decode each pair but leave ``+`` as it is. The first occurrence of a key wins."""
    params: dict[str, str] = {}
    for pair in raw_query.decode("latin-1").split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        key = unquote(key, errors="replace") if "%" in key else key
        params.setdefault(key, unquote(value, encoding="utf-8", errors="replace"))
    return params

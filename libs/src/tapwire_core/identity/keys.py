"""Identifier kinds and their user keys: the same ``<prefix>:<value>`` keys the warehouse stores.

``Identities.user_key()`` picks the strongest identifier of a record with the same order as
:data:`KINDS`, so a profile's canonical key is the key its events would carry anyway whenever possible.
"""

from __future__ import annotations

from typing import Final, Literal

from tapwire_core.envelope import Identities

NodeKind = Literal["identity", "object_id", "fbid", "gpid", "anonymous_id", "email", "phone"]

# Strongest first: the order Identities.user_key() tries them in.
KINDS: Final[tuple[NodeKind, ...]] = (
    "identity",
    "object_id",
    "fbid",
    "gpid",
    "anonymous_id",
    "email",
    "phone",
)
PREFIXES: Final[dict[NodeKind, str]] = {
    "identity": "i:",
    "object_id": "o:",
    "fbid": "f:",
    "gpid": "g:",
    "anonymous_id": "a:",
    "email": "e:",
    "phone": "p:",
}
_KIND_BY_PREFIX: Final[dict[str, NodeKind]] = {prefix: kind for kind, prefix in PREFIXES.items()}
_RANK: Final[dict[NodeKind, int]] = {kind: rank for rank, kind in enumerate(KINDS)}
MAX_KEY_CHARS: Final = 320


def key_for(kind: NodeKind, value: str) -> str:
    return PREFIXES[kind] + value


def kind_of(key: str) -> NodeKind | None:
    """The kind of a user key, or None when it has no known prefix."""
    return _KIND_BY_PREFIX.get(key[:2]) if len(key) > 2 else None


def canonical_rank(key: str) -> int:
    """Lower is stronger. Keys of unknown kind rank last."""
    kind = kind_of(key)
    return len(KINDS) if kind is None else _RANK[kind]


def keys_of(ids: Identities) -> list[str]:
    """Every identifier a record names, as user keys, strongest first."""
    found: tuple[tuple[NodeKind, str | None], ...] = (
        ("identity", ids.identity),
        ("object_id", ids.object_id),
        ("fbid", ids.fbid),
        ("gpid", ids.gpid),
        ("anonymous_id", ids.anonymous_id),
        ("email", ids.email),
        ("phone", ids.phone),
    )
    return [key_for(kind, value) for kind, value in found if value]


def parse_identifier(identifier: str) -> list[str]:
    """The user keys an identifier may denote: itself when it already carries a known prefix, else the value
    under every kind (an email given bare may be stored as an identity, an email or both)."""
    if kind_of(identifier) is not None:
        return [identifier]
    return [key_for(kind, identifier) for kind in KINDS]

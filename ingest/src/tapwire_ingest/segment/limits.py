"""Limits and names of the Segment HTTP Tracking API as tapwire applies them (docs/segment.md)."""

from __future__ import annotations

from typing import Final, Literal

MessageType = Literal["track", "identify", "page", "screen", "group", "alias"]
MESSAGE_TYPES: Final[frozenset[str]] = frozenset({"track", "identify", "page", "screen", "group", "alias"})

MAX_ID_CHARS: Final = 255
MAX_EVENT_NAME_CHARS: Final = 255
# Deeper trait objects are stored as one JSON string rather than flattened further.
MAX_TRAIT_DEPTH: Final = 3

PAGE_EVENT: Final = "Page Viewed"
SCREEN_EVENT: Final = "Screen Viewed"
GROUPS_TRAIT: Final = "Groups"
# Segment's reserved traits that CleverTap's profile model names differently.
RESERVED_TRAITS: Final[dict[str, str]] = {"name": "Name", "email": "Email", "phone": "Phone"}

"""What the sender needs to know about each recipient, read from the warehouse one chunk at a time.

Addresses come from the reserved profile fields (``Email``, ``Phone``) and uploaded device tokens
(``__push_token`` events); a user key made from an email or phone identity (``e:``/``p:``) is used as the
address when the profile has none. The whole latest profile travels along for templates and for the send-time
rules (``MSG-*`` subscription flags, time zone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tapwire_core.warehouse import Warehouse

TOKEN_EVENT = "__push_token"
# Profile keys read as the user's IANA time zone, first found wins.
TIMEZONE_KEYS = ("Timezone", "timezone", "tz", "TZ")


@dataclass
class RecipientProfile:
    user_key: str
    profile: dict[str, Any] = field(default_factory=dict)
    tokens: list[tuple[str, str]] = field(default_factory=list)

    @property
    def email(self) -> str | None:
        value = self.profile.get("Email")
        if isinstance(value, str) and "@" in value:
            return value
        return self.user_key[2:] if self.user_key.startswith("e:") else None

    @property
    def phone(self) -> str | None:
        value = self.profile.get("Phone")
        if isinstance(value, str | int) and str(value):
            return str(value)
        return self.user_key[2:] if self.user_key.startswith("p:") else None

    @property
    def timezone(self) -> str | None:
        for key in TIMEZONE_KEYS:
            value = self.profile.get(key)
            if isinstance(value, str) and value:
                return value
        return None


async def load_profiles(
    warehouse: Warehouse, *, account_id: str, user_keys: Sequence[str], with_tokens: bool
) -> dict[str, RecipientProfile]:
    """Latest profile properties (and device tokens when asked) for ``user_keys``; unknown users get empty ones."""
    profiles = {key: RecipientProfile(key) for key in user_keys}
    if not user_keys:
        return profiles
    params = {"account": account_id, "keys": list(user_keys)}
    rows = await warehouse.query(
        "SELECT user_key, key, argMax(value, ts) AS value, argMax(deleted, ts) AS deleted FROM profile_props "
        "WHERE account_id = {account:String} AND user_key IN {keys:Array(String)} GROUP BY user_key, key",
        params,
    )
    for row in rows:
        if row["deleted"]:
            continue
        try:
            profiles[row["user_key"]].profile[row["key"]] = orjson.loads(row["value"])
        except orjson.JSONDecodeError:
            profiles[row["user_key"]].profile[row["key"]] = row["value"]
    if with_tokens:
        tokens = await warehouse.query(
            "SELECT user_key, JSONExtractString(properties, 'id') AS token, "
            "JSONExtractString(properties, 'type') AS kind, max(ts) AS last FROM events "
            "WHERE account_id = {account:String} AND name = {name:String} AND user_key IN {keys:Array(String)} "
            "GROUP BY user_key, token, kind ORDER BY last DESC",
            {**params, "name": TOKEN_EVENT},
        )
        for row in tokens:
            if row["token"]:
                profiles[row["user_key"]].tokens.append((str(row["token"]), str(row["kind"]).lower()))
    return profiles


async def load_subscription_flags(
    warehouse: Warehouse, *, account_id: str, user_keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The latest ``MSG-*`` profile fields of ``user_keys`` (matched case-insensitively), for a send-time check
    when the profile snapshot taken at fill time may be stale."""
    if not user_keys:
        return {}
    rows = await warehouse.query(
        "SELECT user_key, key, argMax(value, ts) AS value, argMax(deleted, ts) AS deleted FROM profile_props "
        "WHERE account_id = {account:String} AND user_key IN {keys:Array(String)} "
        "AND startsWith(lower(key), 'msg-') GROUP BY user_key, key",
        {"account": account_id, "keys": list(user_keys)},
    )
    flags: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["deleted"]:
            continue
        try:
            value = orjson.loads(row["value"])
        except orjson.JSONDecodeError:
            value = row["value"]
        flags.setdefault(str(row["user_key"]), {})[str(row["key"])] = value
    return flags

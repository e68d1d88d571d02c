"""What the sender needs to know about each recipient, read from the warehouse one chunk at a time.

Addresses come from the reserved profile fields (``Email``, ``Phone``) and uploaded device tokens
(``__push_token`` events: every token a user registered, newest first). Tokens follow identity merges (CleverTap
takes token uploads by ``objectId`` only, so they are often filed under a key merged into the user's identity),
and a token uploaded later by another user has moved to that user's device and is no longer this user's. A user
key made from an email or phone identity (``e:``/``p:``) is used as the address when the profile has none. The
whole latest profile travels along for templates and for the send-time rules (``MSG-*`` subscription flags,
time zone). Profiles are read by the audience's keys as they are; only tokens follow merges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tapwire_core.warehouse import Warehouse
from tapwire_query.cql.identity import aliases_clause, canonical

TOKEN_EVENT = "__push_token"
# Profile keys read as the user's IANA time zone, first found wins.
TIMEZONE_KEYS = ("Timezone", "timezone", "tz", "TZ")
# CleverTap's ``devices`` names and the token kinds that reach them: FCM, APNs and web push (``chrome`` is the
# kind of every browser's web push subscription, whatever the browser); ``wns`` and ``mpns`` tokens are kept but
# never chosen. A push without ``devices`` goes to phones only; browsers get web push campaigns
# (``target_mode: webpush``, or ``devices: ["web"]``).
DEVICE_PLATFORMS = {
    "android": frozenset({"fcm", "gcm"}),
    "ios": frozenset({"apns"}),
    "web": frozenset({"chrome"}),
}
SENDABLE_KINDS = DEVICE_PLATFORMS["android"] | DEVICE_PLATFORMS["ios"]


# Each token filed under any key that counts as one of ``keys`` (after merges), with the key it belongs to: the
# chunk's key whose person uploaded it last. ``_wanted`` holds the canonical key of each of ``keys``.
_TOKENS_SQL = (
    f"WITH {aliases_clause('{account:String}')}, "
    f"arrayMap(k -> {canonical('k')}, {{keys:Array(String)}}) AS _wanted "
    "SELECT token, kind, keys, {keys:Array(String)}[indexOf(_wanted, owner)] AS user_key FROM ("
    f"SELECT JSONExtractString(properties, 'id') AS token, argMax({canonical()}, ts) AS owner, "
    "argMax(lower(JSONExtractString(properties, 'type')), ts) AS kind, "
    "argMax(JSONExtractRaw(properties, 'keys'), ts) AS keys, max(ts) AS last FROM events "
    "WHERE account_id = {account:String} AND name = {name:String} AND token IN ("
    "SELECT JSONExtractString(properties, 'id') FROM events WHERE account_id = {account:String} "
    f"AND name = {{name:String}} AND has(_wanted, {canonical()})) GROUP BY token) "
    "WHERE has(_wanted, owner) AND token != '' ORDER BY last DESC, token"
)


# The latest value of each profile field of some users (``{only}`` narrows the fields). A profile field's history
# is kept as rows; the newest row wins, and a deleted flag on it means the field is gone.
_LATEST_VALUES_SQL = (
    "SELECT user_key, key, argMax(value, ts) AS value, argMax(deleted, ts) AS deleted FROM profile_props "
    "WHERE account_id = {account:String} AND user_key IN {keys:Array(String)}{only} GROUP BY user_key, key"
)
_SUBSCRIPTION_FLAGS = " AND startsWith(lower(key), 'msg-')"


def device_id(token: str) -> str:
    """A push device's identity in outbox keys: a hash of its token (32 hex digits), so a key never holds the
    token itself and stays the same however often the token is uploaded."""
    return hashlib.blake2b(token.encode(), digest_size=16).hexdigest()


@dataclass
class RecipientProfile:
    user_key: str
    profile: dict[str, Any] = field(default_factory=dict)
    # (token, kind), most recently uploaded first.
    tokens: list[tuple[str, str]] = field(default_factory=list)
    # The keys of each web push subscription (``chrome`` token: its endpoint), which its messages are
    # encrypted for.
    subscription_keys: dict[str, dict[str, str]] = field(default_factory=dict)

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
    if not user_keys:
        return {}
    values = await _latest_profile_values(warehouse, account_id=account_id, user_keys=user_keys)
    profiles = {key: RecipientProfile(key, values.get(key, {})) for key in user_keys}
    if with_tokens:
        params = {"account": account_id, "keys": list(user_keys), "name": TOKEN_EVENT}
        for row in await warehouse.query(_TOKENS_SQL, params):
            profile = profiles[row["user_key"]]
            profile.tokens.append((str(row["token"]), str(row["kind"])))
            if row["kind"] == "chrome":
                profile.subscription_keys[str(row["token"])] = _subscription_keys(row["keys"])
    return profiles


def _subscription_keys(raw: Any) -> dict[str, str]:
    """A web push subscription's ``keys`` (``p256dh``, ``auth``) as uploaded; empty when unreadable."""
    try:
        keys = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(keys, dict):
        return {}
    return {name: keys[name] for name in ("p256dh", "auth") if isinstance(keys.get(name), str)}


def push_targets(
    profile: RecipientProfile, *, dead: set[str], devices: Sequence[str] | None, all_devices: bool
) -> list[tuple[str, str]]:
    """The (token, kind) pairs a push goes to: every live, sendable token the user registered with
    ``all_devices``, otherwise the most recent one. ``devices`` (CleverTap's ``android``/``ios``), when given,
    keeps only tokens of those platforms."""
    kinds = SENDABLE_KINDS
    if devices:
        kinds = frozenset().union(*(DEVICE_PLATFORMS.get(d, frozenset()) for d in devices))
    live = [(t, k) for t, k in profile.tokens if t not in dead and k in kinds]
    return live if all_devices else live[:1]


async def load_subscription_flags(
    warehouse: Warehouse, *, account_id: str, user_keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The latest ``MSG-*`` profile fields of ``user_keys`` (matched case-insensitively), for a send-time check
    when the profile snapshot taken at fill time may be stale."""
    return await _latest_profile_values(
        warehouse, account_id=account_id, user_keys=user_keys, subscription_flags_only=True
    )


async def _latest_profile_values(
    warehouse: Warehouse, *, account_id: str, user_keys: Sequence[str], subscription_flags_only: bool = False
) -> dict[str, dict[str, Any]]:
    """user key → field → its latest value (decoded from JSON; kept as stored when it is not JSON), for the
    users of ``user_keys`` that have any; fields whose latest write deleted them are left out."""
    if not user_keys:
        return {}
    sql = _LATEST_VALUES_SQL.replace("{only}", _SUBSCRIPTION_FLAGS if subscription_flags_only else "")
    values: dict[str, dict[str, Any]] = {}
    for row in await warehouse.query(sql, {"account": account_id, "keys": list(user_keys)}):
        if row["deleted"]:
            continue
        try:
            value = orjson.loads(row["value"])
        except orjson.JSONDecodeError:
            value = row["value"]
        values.setdefault(str(row["user_key"]), {})[str(row["key"])] = value
    return values

"""Envelope → warehouse rows for ``events``, ``profile_props`` and ``profiles``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from tapwire_core.envelope import Envelope, Identities

EVENT_COLUMNS: Final = (
    "account_id",
    "event_id",
    "user_key",
    "identity",
    "object_id",
    "email",
    "phone",
    "anonymous_id",
    "name",
    "ts",
    "received_at",
    "source",
    "properties",
    "context",
)
PROFILE_PROP_COLUMNS: Final = ("account_id", "user_key", "key", "value", "ts", "deleted")
PROFILE_OP_COLUMNS: Final = ("account_id", "user_key", "key", "op", "operand", "ts", "event_id")
PROFILE_COLUMNS: Final = (
    "account_id",
    "user_key",
    "identity",
    "object_id",
    "email",
    "phone",
    "anonymous_id",
    "first_seen",
    "last_seen",
)
TOKEN_EVENT_NAME: Final = "__push_token"

_UTC = dt.UTC


def _when(epoch_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, _UTC)


@dataclass(slots=True)
class _SeenRange:
    ids: Identities
    first_ms: int
    last_ms: int


@dataclass(slots=True)
class TableRows:
    """Rows for one insert batch, built incrementally as envelopes arrive."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    profile_props: list[tuple[Any, ...]] = field(default_factory=list)
    profile_ops: list[tuple[Any, ...]] = field(default_factory=list)
    _seen: dict[tuple[str, str], _SeenRange] = field(default_factory=dict)

    def add(self, env: Envelope) -> None:
        ids = env.ids
        user_key = ids.user_key()
        if env.kind == "profile":
            when = _when(env.client_ts)
            for key, value in env.properties.items():
                deleted = type(value) is dict and "$delete" in value
                self.profile_props.append(
                    (
                        env.account_id,
                        user_key,
                        key,
                        "null" if deleted else orjson.dumps(value).decode(),
                        when,
                        int(deleted),
                    )
                )
        else:
            # Token uploads are kept as events too, so device tokens are queryable and erasable with the rest.
            self.events.append(
                (
                    env.account_id,
                    env.event_id,
                    user_key,
                    ids.identity or "",
                    ids.object_id or "",
                    ids.email or "",
                    ids.phone or "",
                    ids.anonymous_id or "",
                    env.name if env.kind == "event" else TOKEN_EVENT_NAME,
                    _when(env.client_ts),
                    _when(env.received_ts),
                    env.source,
                    orjson.dumps(env.properties).decode(),
                    orjson.dumps(env.context).decode() if env.context else "",
                )
            )
        seen_key = (env.account_id, user_key)
        seen = self._seen.get(seen_key)
        if seen is None:
            self._seen[seen_key] = _SeenRange(ids, env.client_ts, env.client_ts)
        else:
            seen.first_ms = min(seen.first_ms, env.client_ts)
            seen.last_ms = max(seen.last_ms, env.client_ts)
            seen.ids = _merge_ids(seen.ids, ids)

    def profiles(self) -> list[tuple[Any, ...]]:
        """One row per user in the batch: identifiers seen and the batch's first/last timestamps."""
        return [
            (
                account_id,
                user_key,
                seen.ids.identity,
                seen.ids.object_id,
                seen.ids.email,
                seen.ids.phone,
                seen.ids.anonymous_id,
                _when(seen.first_ms),
                _when(seen.last_ms),
            )
            for (account_id, user_key), seen in self._seen.items()
        ]

    def __len__(self) -> int:
        return len(self.events) + len(self.profile_props) + len(self.profile_ops)


def _merge_ids(old: Identities, new: Identities) -> Identities:
    if old == new:
        return new
    return Identities(
        identity=new.identity or old.identity,
        object_id=new.object_id or old.object_id,
        fbid=new.fbid or old.fbid,
        gpid=new.gpid or old.gpid,
        email=new.email or old.email,
        phone=new.phone or old.phone,
        anonymous_id=new.anonymous_id or old.anonymous_id,
    )

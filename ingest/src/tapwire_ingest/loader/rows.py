"""Envelope → warehouse rows for ``events``, ``profile_props`` and ``profiles``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import orjson

from tapwire_core.envelope import Identities, StoredEnvelope, decode_properties
from tapwire_core.profile_values import classify
from tapwire_core.warehouse import schema

EVENT_COLUMNS: Final = tuple(name for name, _ in schema.EVENT_COLUMNS)
PROFILE_PROP_COLUMNS: Final = tuple(name for name, _ in schema.PROFILE_PROP_COLUMNS)
PROFILE_OP_COLUMNS: Final = tuple(name for name, _ in schema.PROFILE_OP_COLUMNS)
PROFILE_COLUMNS: Final = tuple(name for name, _ in schema.PROFILE_COLUMNS)
USER_ALIAS_COLUMNS: Final = tuple(name for name, _ in schema.USER_ALIAS_COLUMNS)
TOKEN_EVENT_NAME: Final = "__push_token"

# DateTime64(3) columns are given epoch milliseconds: they are the column's ticks, so the Native writer copies
# them as they are instead of converting a datetime object per value.


class UnstorableEnvelope(ValueError):
    """An envelope the warehouse cannot take; it goes to the dead-letter topic with ``reason``."""

    def __init__(self, reason: str, category: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.category = category


class _AliasProperties(msgspec.Struct, frozen=True):
    alias_key: str
    canonical_key: str
    version: int
    active: int


_alias_decoder = msgspec.json.Decoder(_AliasProperties)


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
    user_aliases: list[tuple[Any, ...]] = field(default_factory=list)
    _seen: dict[tuple[str, str], _SeenRange] = field(default_factory=dict)

    def add(self, env: StoredEnvelope) -> None:
        """Add one envelope's rows, or none: raises ``UnstorableEnvelope`` for an envelope without account or
        user, whose properties are not a JSON object, or an alias whose properties are not a ``user_aliases``
        row (only possible for a payload the gateway did not write). The checks live here, on values this
        method computes anyway, because it runs per record."""
        if env.kind == "alias":
            if not env.account_id:
                raise UnstorableEnvelope("alias names no account", "invalid")
            try:
                self._add_alias(env)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise UnstorableEnvelope(f"undecodable alias row: {exc}", "decode") from exc
            return
        ids = env.ids
        user_key = ids.user_key()
        if not user_key or not env.account_id:
            raise UnstorableEnvelope("envelope names no account or no user", "invalid")
        properties = bytes(env.properties)
        if not properties.lstrip().startswith(b"{"):
            raise UnstorableEnvelope("envelope properties are not a JSON object", "invalid")
        if env.kind == "profile":
            try:
                self._add_profile(env, user_key)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise UnstorableEnvelope(f"undecodable profile properties: {exc}", "decode") from exc
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
                    env.client_ts,
                    env.received_ts,
                    env.source,
                    properties.decode(),
                    _context_text(env.context),
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

    def _add_profile(self, env: StoredEnvelope, user_key: str) -> None:
        for key, value in decode_properties(env.properties).items():
            kind = classify(value)
            if kind == "op":
                ((op, operand),) = value.items()
                self.profile_ops.append(
                    (
                        env.account_id,
                        user_key,
                        key,
                        op,
                        orjson.dumps(operand).decode(),
                        env.client_ts,
                        env.event_id,
                    )
                )
            else:
                deleted = kind == "delete"
                encoded = "null" if deleted else orjson.dumps(value).decode()
                self.profile_props.append(
                    (env.account_id, user_key, key, encoded, env.client_ts, int(deleted))
                )

    def _add_alias(self, env: StoredEnvelope) -> None:
        row = _alias_decoder.decode(env.properties)
        self.user_aliases.append(
            (env.account_id, row.alias_key, row.canonical_key, env.received_ts, row.version, row.active)
        )

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
                seen.first_ms,
                seen.last_ms,
            )
            for (account_id, user_key), seen in self._seen.items()
        ]

    def __len__(self) -> int:
        return len(self.events) + len(self.profile_props) + len(self.profile_ops) + len(self.user_aliases)


def _context_text(raw: msgspec.Raw) -> str:
    text = bytes(raw)
    return "" if text in (b"", b"null") else text.decode()


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

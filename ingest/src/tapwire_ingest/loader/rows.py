"""Envelope → warehouse rows for ``events``, ``profile_props`` and ``profiles``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
# them as they are instead of converting a datetime object per value. The events' JSON text columns
# (``properties``, ``context``) are given the envelope's bytes: the Native writer copies bytes as they are, where
# a str would be decoded from UTF-8 here and encoded back there.


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


class _SeenRange(msgspec.Struct, gc=False):
    # Untracked by the garbage collector, like the envelopes: a batch holds one per user, and none is in a cycle.
    ids: Identities
    first_ms: int
    last_ms: int


class Columns:
    """One table's rows held column by column: ``data[i]`` lists every row's value of ``names[i]``.

    This is the shape clickhouse-connect serializes from (``Warehouse.insert_columns``), so an insert does not
    pivot rows into columns. Iterating yields the rows as tuples (for tests and for re-reading one batch).
    """

    __slots__ = ("data", "names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.data: tuple[list[Any], ...] = tuple([] for _ in names)

    def append(self, row: tuple[Any, ...]) -> None:
        """Add one row; ``row`` has one value per column (checked by the caller, which builds it)."""
        for column, value in zip(self.data, row, strict=True):
            column.append(value)

    def __len__(self) -> int:
        return len(self.data[0])

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return zip(*self.data, strict=True)


@dataclass(slots=True)
class TableRows:
    """Rows for one insert batch, built incrementally as envelopes arrive, column by column."""

    events: Columns = field(default_factory=lambda: Columns(EVENT_COLUMNS))
    profile_props: Columns = field(default_factory=lambda: Columns(PROFILE_PROP_COLUMNS))
    profile_ops: Columns = field(default_factory=lambda: Columns(PROFILE_OP_COLUMNS))
    user_aliases: Columns = field(default_factory=lambda: Columns(USER_ALIAS_COLUMNS))
    # Packs of events the warehouse stores from their JSON (``event_json``), and how many events they hold.
    event_packs: list[bytes] = field(default_factory=list)
    packed_events: int = 0
    # Per account, per user key: nested rather than keyed by a tuple, because a tuple per envelope is an
    # object the garbage collector tracks (strings are not) and a batch keeps one per user alive.
    _seen: dict[str, dict[str, _SeenRange]] = field(default_factory=dict)

    def add(self, env: StoredEnvelope) -> None:
        """Add one envelope's rows, or none: raises ``UnstorableEnvelope`` for an envelope without account or
        user, whose properties are not a JSON object, or an alias whose properties are not a ``user_aliases``
        row (only possible for a payload the gateway did not write). The checks live here, on values this
        method computes anyway, because it runs per record. Every value is computed before the first one is
        appended, so a refused envelope leaves every column as it was."""
        if env.kind == "alias":
            if not env.account_id:
                raise UnstorableEnvelope("alias names no account", "invalid")
            try:
                alias = _alias_decoder.decode(env.properties)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise UnstorableEnvelope(f"undecodable alias row: {exc}", "decode") from exc
            self.user_aliases.append(
                (
                    env.account_id,
                    alias.alias_key,
                    alias.canonical_key,
                    env.received_ts,
                    alias.version,
                    alias.active,
                )
            )
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
                props, ops = _profile_rows(env, user_key)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise UnstorableEnvelope(f"undecodable profile properties: {exc}", "decode") from exc
            for prop in props:
                self.profile_props.append(prop)
            for op in ops:
                self.profile_ops.append(op)
        else:
            name = env.name if env.kind == "event" else TOKEN_EVENT_NAME
            context = _context_json(env.context)
            _require_utf8(properties, "properties")
            _require_utf8(context, "context")
            # The hot path: one append per column, unrolled (a loop over the columns costs more than the rest
            # of this method). Token uploads are kept as events too, so device tokens are queryable and
            # erasable with the rest.
            (
                account_ids,
                event_ids,
                user_keys,
                identities,
                object_ids,
                emails,
                phones,
                anonymous_ids,
                names,
                client_ts,
                received_ts,
                sources,
                texts,
                contexts,
            ) = self.events.data
            account_ids.append(env.account_id)
            event_ids.append(env.event_id)
            user_keys.append(user_key)
            identities.append(ids.identity or "")
            object_ids.append(ids.object_id or "")
            emails.append(ids.email or "")
            phones.append(ids.phone or "")
            anonymous_ids.append(ids.anonymous_id or "")
            names.append(name)
            client_ts.append(env.client_ts)
            received_ts.append(env.received_ts)
            sources.append(env.source)
            texts.append(properties)
            contexts.append(context)
        self._see(env.account_id, user_key, ids, env.client_ts)

    def add_event_pack(
        self, pack: bytes, envelopes: Sequence[StoredEnvelope], user_keys: Sequence[str]
    ) -> None:
        """Add a pack of events whose ``events`` rows the warehouse builds from ``pack`` itself; ``user_keys``
        are the envelopes' user keys (``event_json.json_user_keys`` checked that it may)."""
        self.event_packs.append(pack)
        self.packed_events += len(envelopes)
        see = self._see
        for env, user_key in zip(envelopes, user_keys, strict=True):
            see(env.account_id, user_key, env.ids, env.client_ts)

    def _see(self, account_id: str, user_key: str, ids: Identities, client_ts: int) -> None:
        users = self._seen.get(account_id)
        if users is None:
            users = self._seen[account_id] = {}
        seen = users.get(user_key)
        if seen is None:
            users[user_key] = _SeenRange(ids, client_ts, client_ts)
            return
        # Runs per record: comparisons rather than min()/max() calls, and no merge when nothing changed.
        if client_ts < seen.first_ms:
            seen.first_ms = client_ts
        elif client_ts > seen.last_ms:
            seen.last_ms = client_ts
        if ids != seen.ids:
            seen.ids = _merge_ids(seen.ids, ids)

    def profiles(self) -> Columns:
        """One row per user in the batch: identifiers seen and the batch's first/last timestamps."""
        profiles = Columns(PROFILE_COLUMNS)
        for account_id, users in self._seen.items():
            for user_key, seen in users.items():
                ids = seen.ids
                profiles.append(
                    (
                        account_id,
                        user_key,
                        ids.identity,
                        ids.object_id,
                        ids.email,
                        ids.phone,
                        ids.anonymous_id,
                        seen.first_ms,
                        seen.last_ms,
                    )
                )
        return profiles

    def __len__(self) -> int:
        return (
            self.packed_events
            + len(self.events)
            + len(self.profile_props)
            + len(self.profile_ops)
            + len(self.user_aliases)
        )


def _profile_rows(env: StoredEnvelope, user_key: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The ``profile_props`` and ``profile_ops`` rows of one profile envelope."""
    props: list[tuple[Any, ...]] = []
    ops: list[tuple[Any, ...]] = []
    for key, value in decode_properties(env.properties).items():
        kind = classify(value)
        if kind == "op":
            ((op, operand),) = value.items()
            ops.append(
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
            props.append((env.account_id, user_key, key, encoded, env.client_ts, int(deleted)))
    return props, ops


def is_utf8(text: bytes) -> bool:
    """Whether ``text`` is valid UTF-8. The JSON decoder hands raw values over unchecked, and ClickHouse would
    store invalid UTF-8 as given."""
    if text.isascii():  # nearly always, and far cheaper than decoding
        return True
    try:
        text.decode()
    except UnicodeDecodeError:
        return False
    return True


def _require_utf8(text: bytes, what: str) -> None:
    if not is_utf8(text):
        raise UnstorableEnvelope(f"envelope {what} are not valid UTF-8", "invalid")


def _context_json(raw: msgspec.Raw) -> bytes:
    text = bytes(raw)
    return b"" if text in (b"", b"null") else text


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

"""In-memory stand-ins for unit tests only. Integration tests use the real implementations."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tapwire_core.bus import Bus, BusConsumer, BusUnavailable, Record, partition_for
from tapwire_core.envelope import Envelope, decode
from tapwire_core.envelope_packs import is_pack, split_pack


@dataclass(frozen=True)
class FakeAccount:
    id: str
    region: str = "eu1"
    settings: Mapping[str, Any] = field(default_factory=dict)


class FakeAuthenticator:
    def __init__(
        self,
        accounts: dict[str, tuple[str, FakeAccount]],
        write_keys: dict[str, FakeAccount] | None = None,
    ) -> None:
        self._accounts = accounts
        self._write_keys = write_keys or {}

    async def authenticate_write_key(
        self, write_key: str, *, client: str | None = None
    ) -> FakeAccount | None:
        return self._write_keys.get(write_key)

    async def authenticate_passcode(
        self, account_id: str, passcode: str, *, client: str | None = None
    ) -> FakeAccount | None:
        entry = self._accounts.get(account_id)
        return entry[1] if entry and entry[0] == passcode else None

    def write_key_scope(self, write_key: str) -> bytes:
        return hashlib.sha256(write_key.encode()).digest()


class RecordingBus(Bus):
    """Keeps published records in a list; can be told to fail or to stall publishes."""

    def __init__(self) -> None:
        self.published: dict[str, list[Record]] = {}
        self.fail = False
        self.stall: asyncio.Event | None = None
        self.partition_count = 12

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ensure_topic(self, topic: str, partitions: int) -> None:
        self.published.setdefault(topic, [])

    async def publish(self, topic: str, records: Sequence[Record], *, timeout_s: float) -> None:
        if self.stall is not None:
            try:
                await asyncio.wait_for(self.stall.wait(), timeout_s)
            except TimeoutError as exc:
                raise BusUnavailable("stalled") from exc
        if self.fail:
            raise BusUnavailable("down")
        self.published.setdefault(topic, []).extend(records)

    def envelopes(self, topic: str) -> list[Envelope]:
        """Every envelope published on ``topic``, unpacked, checking each sits on its pack's partition."""
        found: list[Envelope] = []
        for record in self.published.get(topic, []):
            members = split_pack(record.value) if is_pack(record.value) else [record.value]
            for member in members:
                envelope = decode(member)
                assert partition_for(envelope.partition_key(), self.partition_count) == partition_for(
                    record.key, self.partition_count
                ), "an envelope was packed away from its partition"
                found.append(envelope)
        return found

    async def partitions(self, topic: str) -> int:
        if self.fail:
            raise BusUnavailable("down")
        return self.partition_count

    def consumer(self, topics: Sequence[str], group: str) -> BusConsumer:
        raise NotImplementedError("unit fake: no consumers")

    async def healthy(self) -> bool:
        return not self.fail

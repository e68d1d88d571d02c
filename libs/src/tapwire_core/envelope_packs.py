"""Envelopes travel the bus in packs: one bus record carries the envelopes of one request bound for one
partition, as a JSON array.

Per-record work in the Kafka client (batching, sequence numbers, futures on the producer; fetch parsing and
wrapping on the consumer) was the largest cost of both the gateway and the loader. A CleverTap upload holds up
to 1000 records, so packing divides that cost by the records per pack. Placement is unchanged: every envelope
of a pack has a key that lands on the pack's partition (``partition_for``), so one user's envelopes still share
one partition, and a consumer that unpacks sees them in publish order.

A bus value that starts with ``{`` is a single envelope, which the loader keeps accepting.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tapwire_core.bus import Record, partition_for
from tapwire_core.envelope import Envelope, StoredEnvelope, encode

# Well under Kafka's default 1 MiB message limit even for a pack of one oversized envelope's neighbours.
PACK_LIMIT_BYTES = 256 * 1024

_pack_decoder = msgspec.json.Decoder(list[StoredEnvelope])
_items_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def pack(envelopes: Sequence[Envelope], partitions: int) -> list[Record]:
    """Bus records for ``envelopes`` on a topic of ``partitions`` partitions, grouped by partition."""
    groups: dict[int, list[tuple[bytes, bytes]]] = {}
    for envelope in envelopes:
        key = envelope.partition_key()
        groups.setdefault(partition_for(key, partitions), []).append((key, encode(envelope)))
    records: list[Record] = []
    for members in groups.values():
        start, size = 0, 0
        for index, (_key, value) in enumerate(members):
            if size and size + len(value) > PACK_LIMIT_BYTES:
                records.append(_record(members[start:index]))
                start, size = index, 0
            size += len(value) + 1
        records.append(_record(members[start:]))
    return records


def _record(members: Sequence[tuple[bytes, bytes]]) -> Record:
    # Any member's key places the pack on the members' common partition; the first is as good as any.
    return Record(key=members[0][0], value=b"[" + b",".join(value for _key, value in members) + b"]")


def is_pack(value: bytes) -> bool:
    return value[:1] == b"["


def decode_pack(value: bytes) -> list[StoredEnvelope]:
    """Every envelope of a pack. Raises ``msgspec.ValidationError``/``DecodeError`` if any is malformed."""
    return _pack_decoder.decode(value)


def split_pack(value: bytes) -> list[bytes]:
    """The pack's members as separate JSON documents, for isolating a malformed one. Raises like
    :func:`decode_pack` when the value is not a JSON array."""
    return [bytes(item) for item in _items_decoder.decode(value)]

"""Packing envelopes into bus records: placement, size bound, order, and taking a broken pack apart."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapwire_core.bus import partition_for
from tapwire_core.envelope import Envelope, Identities, decode_stored, encode
from tapwire_core.envelope_packs import PACK_LIMIT_BYTES, decode_pack, is_pack, pack, split_pack


def envelope(user: str, n: int, payload: str = "") -> Envelope:
    return Envelope(
        account_id="ACC",
        event_id=f"{user}-{n}",
        kind="event",
        ids=Identities(identity=user),
        client_ts=1_700_000_000_000 + n,
        received_ts=1_700_000_000_000,
        source="clevertap",
        name="Bought",
        properties={"n": n, "payload": payload},
    )


@given(
    users=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=40),
    partitions=st.integers(min_value=1, max_value=16),
)
def test_every_envelope_sits_on_its_own_partition_in_order(users: list[str], partitions: int) -> None:
    envelopes = [envelope(user, n) for n, user in enumerate(users)]
    records = pack(envelopes, partitions)
    unpacked: list[tuple[int, str]] = []
    for record in records:
        assert is_pack(record.value)
        for stored in decode_pack(record.value):
            key = f"{stored.account_id}\x1f{stored.ids.user_key()}".encode()
            assert partition_for(key, partitions) == partition_for(record.key, partitions)
            unpacked.append((partition_for(key, partitions), stored.event_id))
    assert sorted(e for _, e in unpacked) == sorted(e.event_id for e in envelopes)
    # Within a partition, publish order is kept.
    for partition in set(p for p, _ in unpacked):
        mine = [e for p, e in unpacked if p == partition]
        expected = [
            e.event_id for e in envelopes if partition_for(e.partition_key(), partitions) == partition
        ]
        assert mine == expected
    assert len(records) <= partitions


def test_large_requests_split_under_the_pack_limit() -> None:
    envelopes = [envelope("same-user", n, payload="x" * 4000) for n in range(200)]
    records = pack(envelopes, 4)
    assert len(records) > 1
    assert all(len(r.value) <= PACK_LIMIT_BYTES for r in records)
    assert [s.event_id for r in records for s in decode_pack(r.value)] == [e.event_id for e in envelopes]


def test_one_oversized_envelope_still_travels_alone() -> None:
    big = envelope("u", 1, payload="y" * (PACK_LIMIT_BYTES + 10))
    records = pack([envelope("u", 0), big, envelope("u", 2)], 1)
    assert [len(decode_pack(r.value)) for r in records] == [1, 1, 1]


def test_a_malformed_member_fails_the_pack_but_not_its_split() -> None:
    good = encode(envelope("u", 1))
    value = b"[" + good + b',{"account_id":1},' + good + b"]"
    with pytest.raises(msgspec.ValidationError):
        decode_pack(value)
    members = split_pack(value)
    assert len(members) == 3
    assert decode_stored(members[0]).event_id == "u-1"
    with pytest.raises(msgspec.ValidationError):
        decode_stored(members[1])


def test_single_envelopes_are_not_packs() -> None:
    assert not is_pack(encode(envelope("u", 1)))
    with pytest.raises(msgspec.DecodeError):
        split_pack(b"\x00garbage")

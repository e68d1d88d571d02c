"""Per-record validation of CleverTap uploads: documented codes, neighbours kept, stable event ids."""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_ingest.clevertap.upload_records import validate_upload

NOW_MS = 1_760_000_000_000
DIGEST = b"\x01" * 16


def run(records: list[Any], digest: bytes = DIGEST) -> Any:
    return validate_upload(records, account_id="ACC", received_ms=NOW_MS, request_digest=digest)


def event(**extra: Any) -> dict[str, Any]:
    return {"type": "event", "identity": "u1", "evtName": "Viewed", "evtData": {"a": 1}} | extra


def profile(**data: Any) -> dict[str, Any]:
    return {"type": "profile", "identity": "u1", "profileData": data}


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"type": "event", "identity": "u1", "evtData": {}}, 509),
        (event(evtName=""), 509),
        (event(evtName="App Launched"), 513),
        (event(evtData=[1]), 512),
        (event(evtData={"nested": {"a": 1}}), 512),
        (event(evtData={"big": "x" * 513}), 512),
        (event(evtData={"big": "é" * 257}), 512),
        (event(evtData={f"k{i}": i for i in range(257)}), 522),
        (event(evtData={"": 1}), 512),
        (event(evtData={"k" * 121: 1}), 512),
        ({"type": "event", "evtName": "x", "evtData": {}}, 523),
        (event(identity=""), 523),
        (event(identity="x" * 120), 523),
        (event(identity=True), 523),
        (event(identity="a\nb"), 523),
        (event(ts="1700000000"), 525),
        (event(ts=1_700_000_000_000), 525),
        (event(ts=-1), 525),
        (event(ts=1.5), 525),
        ({"type": "thing", "identity": "u1"}, 524),
        ("not an object", 524),
        (profile(Email="nope"), 515),
        (profile(Phone="4155551234"), 516),
        (profile(Gender="X"), 514),
        (profile(Age="eighteen"), 520),
        (profile(Employed="maybe"), 517),
        (profile(Education="PhD"), 518),
        (profile(Married=1), 519),
        (profile(DOB="1990-01-01"), 512),
        (profile(tags={"$frobnicate": 1}), 512),
        (profile(score={"$incr": "one"}), 512),
        ({"type": "profile", "identity": "u1", "profileData": "x"}, 512),
        ({"type": "token", "identity": "u1", "tokenData": {"id": "t", "type": "fcm"}}, 530),
        ({"type": "token", "objectId": "o1", "tokenData": "t"}, 531),
        ({"type": "token", "objectId": "o1", "tokenData": {"type": "fcm"}}, 532),
        ({"type": "token", "objectId": "o1", "tokenData": {"id": "t"}}, 533),
        ({"type": "token", "objectId": "o1", "tokenData": {"id": "t", "type": "sms"}}, 534),
        ({"type": "token", "objectId": "o1", "tokenData": {"id": "t", "type": "chrome"}}, 531),
    ],
)
def test_bad_record_gets_its_code_and_neighbours_survive(record: Any, code: int) -> None:
    outcome = run([event(), record, event(evtName="Other")])
    assert [env.name for env in outcome.accepted] == ["Viewed", "Other"]
    assert len(outcome.unprocessed) == 1
    entry = outcome.unprocessed[0]
    assert entry["code"] == code
    assert entry["status"] == "fail"
    assert entry["error"].endswith("Skipped record number : 2")
    assert entry["record"] == record
    assert outcome.status == "partial"


def test_valid_records_of_every_kind() -> None:
    records = [
        event(ts=1_700_000_000, evtData={"Amount": 9.5, "ok": True, "none": None, "when": "$D_1700000000"}),
        {
            "type": "event",
            "objectId": "o-1",
            "evtName": "Charged",
            "evtData": {"Amount": 10, "Items": [{"Category": "books", "Quantity": 1}]},
        },
        {"type": "event", "FBID": 12345, "evtName": "Liked", "evtData": {"tags": ["a", "b"]}},
        profile(
            Name="Ann",
            Email="ann@example.com",
            Phone="+14155551234",
            Gender="F",
            Age="18",
            DOB="$D_631152000",
            Employed="Y",
            Married="N",
            Education="Graduate",
            tags={"$add": ["x"]},
            score={"$incr": 2},
            old={"$delete": 1},
        ),
        {"type": "token", "objectId": "o-1", "tokenData": {"id": "tok", "type": "apns"}},
    ]
    outcome = run(records)
    assert outcome.unprocessed == []
    assert outcome.status == "success"
    first, _charged, liked, prof, token = outcome.accepted
    assert first.client_ts == 1_700_000_000_000
    assert first.received_ts == NOW_MS
    assert liked.ids.fbid == "12345"
    assert prof.ids.email == "ann@example.com"
    assert prof.ids.phone == "+14155551234"
    assert prof.kind == "profile" and prof.properties["Name"] == "Ann"
    assert token.kind == "token" and token.ids.object_id == "o-1"
    assert all(env.source == "clevertap" for env in outcome.accepted)


def test_every_record_rejected_is_fail() -> None:
    outcome = run([event(evtName=""), event(identity="")])
    assert outcome.status == "fail"
    assert [u["error"][-1] for u in outcome.unprocessed] == ["1", "2"]


def test_missing_ts_defaults_to_receive_time() -> None:
    (env,) = run([event()]).accepted
    assert env.client_ts == NOW_MS


def test_event_ids_are_stable_across_retries_and_distinct_within_a_request() -> None:
    records = [event(), event()]
    first = [e.event_id for e in run(records).accepted]
    retried = [e.event_id for e in run(records).accepted]
    assert first == retried
    assert first[0] != first[1], "two identical records without ts in one request are two events"
    other_request = [e.event_id for e in run(records, digest=b"\x02" * 16).accepted]
    assert set(other_request).isdisjoint(first)


def test_event_id_with_ts_ignores_request_and_key_order() -> None:
    a = {"type": "event", "identity": "u", "evtName": "E", "evtData": {"x": 1, "y": 2}, "ts": 1_700_000_000}
    b = {"ts": 1_700_000_000, "evtData": {"y": 2, "x": 1}, "evtName": "E", "identity": "u", "type": "event"}
    (ea,) = run([a]).accepted
    (eb,) = run([b], digest=b"\x09" * 16).accepted
    assert ea.event_id == eb.event_id


def test_client_event_id_is_kept() -> None:
    (env,) = run([event(evtId="client-123")]).accepted
    assert env.event_id == "client-123"


def test_partition_key_groups_by_account_and_user() -> None:
    one, two = run([event(), event(evtName="Other", ts=5)]).accepted
    assert one.partition_key() == two.partition_key() == b"ACC\x1fi:u1"

"""Property-based: hostile and malformed uploads get their documented error, valid neighbours survive,
and the gateway never answers 5xx for a client's mistake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.clevertap.upload_records import validate_upload
from tapwire_ingest.http.upload import router as upload_router
from tests.fakes import FakeAccount, FakeAuthenticator, RecordingBus

HEADERS = {"X-CleverTap-Account-Id": "A", "X-CleverTap-Passcode": "p"}
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=5),  # control characters
    st.just("x" * 600),  # over the value cap
    st.just("\u00e9" * 300),  # under the char cap, over the byte cap
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
hostile_records = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["event", "profile", "token", "EVENT", "", 1])},
        optional={
            "identity": json_values,
            "objectId": json_values,
            "FBID": json_values,
            "evtName": json_values,
            "evtData": json_values,
            "profileData": json_values,
            "tokenData": json_values,
            "ts": json_values,
        },
    ),
)
valid_records = st.builds(
    lambda i, name, value: {
        "type": "event",
        "identity": f"user-{i}",
        "evtName": f"evt {name}",
        "evtData": {"v": value},
    },
    st.integers(0, 10_000),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
    st.one_of(st.integers(-1000, 1000), st.text(max_size=30).filter(str.isprintable)),
)


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def client(bus: RecordingBus) -> AsyncIterator[httpx.AsyncClient]:
    context = ServiceContext(
        settings=Settings(max_body_bytes=1024 * 1024),
        authenticator=FakeAuthenticator({"A": ("p", FakeAccount("A"))}),
        readiness=_ready,
        bus_=bus,
    )
    app = create_app(context, [upload_router])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def _ready() -> dict[str, bool]:
    return {}


@SETTINGS
@given(records=st.lists(st.one_of(hostile_records, valid_records), max_size=25))
async def test_each_record_is_accepted_or_explained(
    client: httpx.AsyncClient, bus: RecordingBus, records: list[Any]
) -> None:
    bus.published.clear()
    response = await client.post("/1/upload", headers=HEADERS, content=orjson.dumps({"d": records}))
    assert response.status_code == 200, response.text
    body = response.json()
    expected = validate_upload(records, account_id="A", received_ms=0, request_digest=b"")
    assert body["processed"] == len(expected.accepted)
    assert body["processed"] + len(body["unprocessed"]) == len(records)
    for entry, wanted in zip(body["unprocessed"], expected.unprocessed, strict=True):
        assert isinstance(entry["code"], int) and 509 <= entry["code"] <= 535
        assert (entry["code"], entry["error"]) == (wanted["code"], wanted["error"])
        assert " Skipped record number : " in entry["error"]
    stored = bus.envelopes("tapwire.events")
    assert len(stored) == body["processed"]
    valid_in = [r for r in records if isinstance(r, dict) and str(r.get("identity", "")).startswith("user-")]
    assert {e.ids.identity for e in stored} >= {r["identity"] for r in valid_in if _plainly_valid(r)}


def _plainly_valid(record: dict[str, Any]) -> bool:
    return set(record) == {"type", "identity", "evtName", "evtData"} and record["type"] == "event"


@SETTINGS
@given(body=st.binary(max_size=2048))
async def test_arbitrary_bytes_never_5xx(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/1/upload", headers=HEADERS, content=body)
    assert response.status_code in (200, 400), response.text
    payload = response.json()
    assert payload["status"] in ("success", "partial", "fail")


@SETTINGS
@given(depth=st.integers(100, 3000))
async def test_deep_nesting(client: httpx.AsyncClient, depth: int) -> None:
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    body = b'{"d":[{"type":"event","identity":"u","evtName":"E","evtData":' + nested + b"}]}"
    response = await client.post("/1/upload", headers=HEADERS, content=body)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["unprocessed"][0]["code"] == 512


async def test_duplicate_keys_last_one_wins(client: httpx.AsyncClient, bus: RecordingBus) -> None:
    body = b'{"d":[{"type":"event","identity":"first","identity":"second","evtName":"E","evtData":{}}]}'
    response = await client.post("/1/upload", headers=HEADERS, content=body)
    assert response.json()["processed"] == 1
    assert bus.envelopes("tapwire.events")[0].ids.identity == "second"


async def test_huge_string_is_rejected_per_record(client: httpx.AsyncClient) -> None:
    records = [
        {"type": "event", "identity": "u", "evtName": "E", "evtData": {"blob": "x" * 200_000}},
        {"type": "event", "identity": "u", "evtName": "E", "evtData": {}},
    ]
    body = (await client.post("/1/upload", headers=HEADERS, content=orjson.dumps({"d": records}))).json()
    assert body["processed"] == 1 and body["unprocessed"][0]["code"] == 512

"""The ``d`` decoder against the Web SDK's own encoder (``compressToBase64`` in the published clevertap.js,
run under Node): every text the SDK can produce decodes to exactly that text, and what it cannot produce is
refused with a clear error, within the size cap, never with a partial result."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapwire_ingest.clevertap_sdk import lz
from tapwire_ingest.clevertap_sdk.lz import LzDecodeError, LzTooLarge, decompress_from_base64
from tests.websdk import lz_reference as reference
from tests.websdk.sdk_encoder import SdkEncoder

CAP = 1_000_000


@pytest.fixture(scope="module")
def encoder() -> Iterator[SdkEncoder]:
    with SdkEncoder() as running:
        yield running


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400))
def test_any_unicode_text_round_trips(encoder: SdkEncoder, text: str) -> None:
    assert decompress_from_base64(encoder.encode(text), max_chars=CAP) == text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), max_size=80))
def test_astral_characters_round_trip_as_surrogate_pairs(encoder: SdkEncoder, text: str) -> None:
    assert decompress_from_base64(encoder.encode(text), max_chars=CAP) == text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=json_values)
def test_json_payloads_round_trip(encoder: SdkEncoder, payload: Any) -> None:
    text = orjson.dumps(payload).decode()
    assert orjson.loads(decompress_from_base64(encoder.encode(text), max_chars=CAP)) == payload


def test_long_repetitive_text_round_trips(encoder: SdkEncoder) -> None:
    text = "Charged" * 5000 + "ü" * 3000 + "".join(chr(c) for c in range(0x20, 0x3000, 7))
    assert decompress_from_base64(encoder.encode(text), max_chars=CAP) == text


def test_the_empty_string_round_trips(encoder: SdkEncoder) -> None:
    assert decompress_from_base64(encoder.encode(""), max_chars=CAP) == ""


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=200), data=st.data())
def test_a_truncated_stream_is_refused_never_returned_short(
    encoder: SdkEncoder, text: str, data: st.DataObject
) -> None:
    encoded = encoder.encode(text).rstrip("=")
    cut = data.draw(st.integers(1, len(encoded) - 1)) if len(encoded) > 1 else 0
    try:
        decoded = decompress_from_base64(encoded[:cut], max_chars=CAP)
    except LzDecodeError:
        return
    # A cut inside the trailing zero padding leaves the stream whole: then the text must be exactly right.
    assert decoded == text


def test_expansion_past_the_cap_stops_while_decoding(encoder: SdkEncoder) -> None:
    encoded = encoder.encode("a" * 200_000)
    assert len(encoded) < 3000
    with pytest.raises(LzTooLarge):
        decompress_from_base64(encoded, max_chars=100_000)
    assert len(decompress_from_base64(encoded, max_chars=200_000)) == 200_000


@pytest.mark.parametrize(
    "garbage",
    ["", "====", "not base64!", "%%%", "A", "AAAA", "////////", "<script>", "N4Ighi\u00e9BcCMC", "\x00\x01"],
)
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(LzDecodeError):
        decompress_from_base64(garbage, max_chars=CAP)


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=300))
def test_random_streams_decode_or_are_refused_cleanly(raw: bytes) -> None:
    try:
        text = decompress_from_base64(base64.b64encode(raw).decode(), max_chars=10_000)
    except LzDecodeError:
        return
    assert len(text.encode("utf-16-le")) // 2 <= 10_000


def test_an_unpaired_surrogate_is_refused(encoder: SdkEncoder) -> None:
    # JSON.stringify escapes lone surrogates, so only a hand-made stream carries one.
    with pytest.raises(LzDecodeError, match="surrogate"):
        decompress_from_base64(encoder.encode("\ud800x"), max_chars=CAP)


def _outcome_of_production(raw: bytes, cap: int) -> str:
    try:
        return "text:" + lz._decompress(raw, cap)
    except LzTooLarge:
        return "too large"
    except LzDecodeError as exc:
        return "truncated" if "truncated" in str(exc) else "malformed"


def _outcome_of_reference(raw: bytes, cap: int) -> str:
    try:
        return "text:" + reference.decompress(raw, cap)
    except reference.TooLarge:
        return "too large"
    except reference.Truncated:
        return "truncated"
    except reference.UnknownCode:
        return "malformed"


@settings(max_examples=3000, deadline=None)
@given(raw=st.binary(min_size=1, max_size=80), cap=st.sampled_from([3, 40, 1_000, CAP]))
def test_the_c_decoder_reads_every_stream_as_the_bit_by_bit_reference_does(raw: bytes, cap: int) -> None:
    """Random streams hit every branch: literals of both widths, the code past the dictionary, unknown codes,
    truncation inside a code or a literal, the cap; the C decoder must agree on all of them."""
    # Surrogates are joined (or refused) after decoding, which the reference leaves out: compare the code units.
    expected = _outcome_of_reference(raw, cap)
    got = _outcome_of_production(raw, cap)
    if got.startswith("text:") or expected.startswith("text:"):
        assert got == expected or (
            expected.startswith("text:") and any(0xD800 <= ord(c) <= 0xDFFF for c in expected[5:])
        )
    else:
        assert got == expected


def test_the_c_decoder_matches_the_reference_on_sdk_streams_cut_anywhere(encoder: SdkEncoder) -> None:
    text = orjson.dumps(
        {
            "type": "event",
            "evtName": "Product Viewed",
            "evtData": {"Price": 59.99, "Name": "Uhr \u00fc\u4e2d"},
        }
    ).decode()
    raw = base64.b64decode(encoder.encode(text))
    for cut in range(1, len(raw) + 1):
        assert _outcome_of_production(raw[:cut], CAP) == _outcome_of_reference(raw[:cut], CAP)


def test_codes_wider_than_sixteen_bits_decode(encoder: SdkEncoder) -> None:
    # Over 65,536 dictionary entries: the coder's codes grow past 16 bits, wider than any literal.
    text = "".join(chr(0x4E00 + (n * 7919) % 20000) for n in range(150_000))
    assert decompress_from_base64(encoder.encode(text), max_chars=CAP) == text

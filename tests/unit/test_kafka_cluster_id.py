"""The test broker's KRaft cluster id never starts with ``-`` (the storage tool would read it as an option)."""

from __future__ import annotations

import uuid

import pytest

from tests.infra import kafka_broker


def test_an_id_that_would_start_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to "-" as the first URL-safe base64 character.
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" + bytes(15))])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    cluster_id = kafka_broker.random_cluster_id()
    assert cluster_id == "AQAAAAAAAAAAAAAAAAAAAA"
    assert len(cluster_id) == 22

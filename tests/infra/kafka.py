"""Apache Kafka for the test suite: one single-node KRaft broker per session, started on first use.

``kafka_broker`` (session) is a running ``KafkaBroker``: ``.bootstrap`` is its ``host:port``; ``.stop()`` and
``.start()`` take it down and bring it back on the same port with its data (a test that stops it must start
it again, in a ``finally``). ``unique_topic`` (function) is a topic name no other test uses, and
``topic_names`` makes more of them. Tests using the broker must be marked ``integration``. Missing jars fail
the test with the command that installs them (``make kafka``); nothing is skipped.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.infra.kafka_broker import KafkaBroker, KafkaNotInstalled, kafka_home

_FIXTURES = ("kafka_broker",)


def pytest_runtest_setup(item: pytest.Item) -> None:
    fixtures = getattr(item, "fixturenames", ())
    if any(name in fixtures for name in _FIXTURES) and item.get_closest_marker("integration") is None:
        pytest.fail(f"{item.nodeid} uses Kafka but is not marked @pytest.mark.integration", pytrace=False)


def _installed_home() -> Path:
    try:
        return kafka_home()
    except KafkaNotInstalled as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


def _start(broker: KafkaBroker) -> None:
    try:
        broker.start()
        return
    except RuntimeError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """A running broker shared by the session; stopped and deleted at the end."""
    home = _installed_home()
    workdir = Path(tempfile.mkdtemp(prefix="tapwire-kafka-"))
    broker = KafkaBroker(home, workdir)
    try:
        _start(broker)
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def topic_names(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``make(label)`` returns a fresh topic name that carries the test's name and ``label``."""
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]

    def make(label: str = "t") -> str:
        return f"{test}.{label}.{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def unique_topic(topic_names: Callable[[str], str]) -> str:
    """A topic name no other test uses."""
    return topic_names("t")

"""A client library retrying a lost connection every 100 ms writes one log line per window, not ten a second."""

from __future__ import annotations

import logging

import orjson
import pytest

from tapwire_core.log import JsonFormatter, RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines() -> list[str]:
    return []


def emitter(lines: list[str], clock: Clock) -> logging.Handler:
    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter(window_s=30.0, clock=clock))
    return handler


def test_a_broker_outage_logs_once_per_window_with_the_count(lines: list[str]) -> None:
    clock = Clock()
    handler = emitter(lines, clock)
    logger = logging.getLogger("aiokafka.producer.sender")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for tick in range(600):  # a minute of retries every 100 ms
            clock.now = tick * 0.1
            logger.warning("Got error produce response: %s", f"NodeNotReadyError #{tick}")
        clock.now = 61.0
        logger.warning("Got error produce response: %s", "the last one")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    entries = [orjson.loads(line) for line in lines]
    assert [entry["msg"] for entry in entries] == [
        "Got error produce response: NodeNotReadyError #0",
        "Got error produce response: NodeNotReadyError #300",
        "Got error produce response: the last one",
    ]
    assert [entry.get("repeated") for entry in entries] == [None, 299, 299]


def test_our_own_modules_and_other_messages_pass(lines: list[str]) -> None:
    clock = Clock()
    handler = emitter(lines, clock)
    ours = logging.getLogger("tapwire_ingest.loader.writer")
    kafka = logging.getLogger("aiokafka.consumer.fetcher")
    for logger in (ours, kafka):
        logger.addHandler(handler)
        logger.propagate = False
    try:
        for _ in range(3):
            ours.warning("warehouse unavailable, retrying")
        kafka.error("Failed fetch messages from %s: %s", 1, "NodeNotReadyError")
        kafka.warning("Heartbeat failed for group %s", "tapwire-loader")  # another template: passes
        kafka.error("Failed fetch messages from %s: %s", 1, "NodeNotReadyError")  # held back
    finally:
        for logger in (ours, kafka):
            logger.removeHandler(handler)
            logger.propagate = True
    assert len(lines) == 5

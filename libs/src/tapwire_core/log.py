"""Structured JSON logs: one object per line on stderr, ready for any log shipper."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


# Client libraries that log every retry of a lost connection: aiokafka writes one line per request every
# 100 ms while a broker is down (some 40 lines a second from a gateway and a loader), urllib3 one per attempt.
CHATTY_LIBRARIES = ("aiokafka", "kafka", "urllib3", "clickhouse_connect")


class RepeatFilter(logging.Filter):
    """Lets one record of a kind (logger, level, message template) through per ``window_s`` from the chatty
    client libraries; the next one that passes carries how many were held back (``repeated``). Our own
    modules log with backoff and pass untouched."""

    def __init__(
        self,
        *,
        window_s: float = 30.0,
        prefixes: tuple[str, ...] = CHATTY_LIBRARIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._window_s = window_s
        self._prefixes = prefixes
        self._clock = clock
        # kind → (when one last passed, how many were held back since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not any(name == prefix or name.startswith(prefix + ".") for prefix in self._prefixes):
            return True
        kind = (name, record.levelno, str(record.msg))
        now = self._clock()
        last = self._seen.get(kind)
        if last is not None and now - last[0] < self._window_s:
            self._seen[kind] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.repeated = last[1]
        if len(self._seen) > 1000:  # a library that puts values in its templates: forget, never grow
            self._seen.clear()
        self._seen[kind] = (now, 0)
        return True


def configure(level: str = "INFO") -> None:
    """Route every logger to one JSON handler on stderr. Idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_tapwire", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter())
    handler._tapwire = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's access log would double every request; request metrics cover it.
    logging.getLogger("uvicorn.access").disabled = True

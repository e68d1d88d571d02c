"""Bus interface and implementations."""

from tapwire_core.bus.base import (
    Bus,
    BusConsumer,
    BusError,
    BusUnavailable,
    Delivered,
    Record,
    TopicPartition,
    partition_for,
)

__all__ = [
    "Bus",
    "BusConsumer",
    "BusError",
    "BusUnavailable",
    "Delivered",
    "Record",
    "TopicPartition",
    "partition_for",
]

"""Bus interface and implementations."""

from tapwire_core.bus.base import (
    Bus,
    BusConsumer,
    BusError,
    BusUnavailable,
    Delivered,
    Record,
    TopicPartition,
)

__all__ = ["Bus", "BusConsumer", "BusError", "BusUnavailable", "Delivered", "Record", "TopicPartition"]

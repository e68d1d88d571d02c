"""The loader's lag gauges: Kafka counts messages, and a message packs many records."""

from __future__ import annotations

from typing import Any, cast

from tapwire_core import metrics
from tapwire_core.bus import BusConsumer, TopicPartition
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_ingest.loader.pipeline import Loader
from tests.fakes import RecordingBus


class _Lagging:
    async def lag(self) -> dict[TopicPartition, int]:
        return {TopicPartition("lag-topic", 0): 12, TopicPartition("lag-topic", 1): 0}


def _gauge(name: str, partition: int) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, {"topic": "lag-topic", "partition": str(partition)})


async def test_records_lag_is_the_message_lag_times_the_records_per_message_seen() -> None:
    loader = Loader(bus=RecordingBus(), warehouse=cast(Warehouse, None), settings=Settings())
    consumer = cast(BusConsumer, _Lagging())
    export: Any = loader._export_lag

    await export(consumer)  # nothing fetched yet: one record per message is all that is known
    assert _gauge("tapwire_loader_lag_messages", 0) == 12
    assert _gauge("tapwire_loader_lag_records", 0) == 12

    loader._per_record = 87.5
    await export(consumer)
    assert _gauge("tapwire_loader_lag_messages", 0) == 12
    assert _gauge("tapwire_loader_lag_records", 0) == 1050
    assert _gauge("tapwire_loader_lag_records", 1) == 0

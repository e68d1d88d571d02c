"""Ingestion health for the overview: the loader's lag and dead letters, read from its Prometheus metrics.

In embedded mode the loader runs in this process and its registry is read directly; in distributed mode the
console fetches the loader's ``/metrics`` (``TAPWIRE_CONSOLE_LOADER_URL``). The figures are the deployment's,
not one account's: lag and dead letters are properties of the shared pipeline.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tapwire_core import metrics

_SUMMED = {
    "tapwire_loader_lag_records": "lag_records",
    "tapwire_loader_lag_messages": "lag_messages",
    "tapwire_dead_letters": "dead_letters",
    "tapwire_loader_rows": "rows_loaded",
    "tapwire_ingest_records": "records_received",
}


def summarise(text: str) -> dict[str, float]:
    found: dict[str, float] = dict.fromkeys(_SUMMED.values(), 0.0)
    for family in text_string_to_metric_families(text):
        key = _SUMMED.get(family.name)
        if key is None:
            continue
        for sample in family.samples:
            if sample.name.endswith(("_created",)):
                continue
            found[key] += float(sample.value)
    return found


async def read(loader_url: str | None, *, loader_in_process: bool) -> dict[str, Any]:
    """The summary, with ``source`` saying where it was read and ``available`` False when it could not be."""
    if loader_url is None and not loader_in_process:
        return {"available": False, "source": None, "reason": "TAPWIRE_CONSOLE_LOADER_URL is not set"}
    if loader_url is None:
        return {"available": True, "source": "this process", **summarise(metrics.render().decode())}
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"{loader_url.rstrip('/')}/metrics")
            response.raise_for_status()
    except httpx.HTTPError as exc:
        return {"available": False, "source": loader_url, "reason": type(exc).__name__}
    return {"available": True, "source": loader_url, **summarise(response.text)}

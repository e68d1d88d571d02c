"""An assembled app's lifespan on the embedded stores: what a worker that cannot start leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapwire_core.settings import Settings
from tapwire_services import runtime
from tapwire_services.assembly import build_app
from tapwire_services.workers import Wiring
from tests.unit.test_service_workers import Recorded


@pytest.mark.integration
async def test_an_app_whose_worker_fails_to_start_closes_its_connections(tmp_path: Path) -> None:
    """The lifespan of a real app: the connections opened before the failing worker are closed again."""
    settings = Settings(data_dir=tmp_path)
    components = runtime.embedded(settings)
    journal: list[str] = []

    def failing(_: Wiring) -> Recorded:
        return Recorded("late", journal, fail_start=True)

    app = build_app(settings, components, routers=[], workers=[failing], embedded=True)
    with pytest.raises(RuntimeError, match="late cannot start"):
        async with app.router.lifespan_context(app):
            pass
    assert journal == ["failed late"]
    assert not await components.store.ping()  # closed: the engine is gone

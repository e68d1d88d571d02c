"""The control store on each of its databases, for tests that hold both to one behaviour: ``store_url`` is a
fresh SQLite file or a fresh PostgreSQL database (parametrised), ``store`` a started store on it with the tests'
credential digests. A module defining fixtures of these names uses its own instead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tapwire_core.control.store import ControlStore
from tests.credentials import LOOKUP_DIGESTS


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[ControlStore]:
    control = ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS)
    await control.start()
    try:
        yield control
    finally:
        await control.close()

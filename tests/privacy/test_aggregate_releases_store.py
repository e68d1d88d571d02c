"""Released anonymised aggregates under a privacy request: an erasure deletes the releases whose definition
names the subject (the account's and industry-wide ones) and keeps the rest; an account's erasure deletes all of
the account's; an export lists those naming the subject."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.aggregate_release_models import AggregateReleaseRow
from tests.privacy.conftest import Rig

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _but(email: str) -> dict[str, Any]:
    return {
        "common_profile_properties": {
            "profile_fields": [{"name": "Email", "operator": "not_equals", "value": email}]
        }
    }


RELEASES: list[tuple[str, str | None, dict[str, Any]]] = [
    ("everyone", "ACC-1", {}),
    ("but-carol", "ACC-1", _but(" Carol@Example.com")),
    ("industry-but-carol", None, _but("carol@example.com")),
    ("other-account-carol", "ACC-2", _but("carol@example.com")),
    ("but-bob", "ACC-1", _but("bob@example.com")),
]


async def seed(rig: Rig) -> None:
    async with AsyncSession(rig.control.engine) as session, session.begin():
        for release_id, account, definition in RELEASES:
            await session.execute(
                insert(AggregateReleaseRow).values(
                    id=release_id,
                    account_id=account,
                    definition=definition,
                    anchor="20261201",
                    released={"groups": [], "other": False},
                    released_at=NOW,
                )
            )


async def _left(rig: Rig) -> list[str]:
    async with AsyncSession(rig.control.engine) as session:
        return sorted(await session.scalars(select(AggregateReleaseRow.id)))


async def _request(rig: Rig, kind: str, *, keys: list[str] | None) -> str:
    view = await rig.repository.requests.create(
        account_id="ACC-1",
        type=kind,  # type: ignore[arg-type]
        scope="subject" if keys else "tenant",
        channel="api",
        jurisdiction="gdpr",
        keys=keys or [],
    )
    await rig.run_until_settled()
    done = await rig.repository.requests.get(view.id)
    assert done.status == "completed", json.dumps(done.progress)[-1500:]
    return view.id


async def test_erasure_deletes_the_releases_naming_the_subject(rig: Rig) -> None:
    await seed(rig)
    await _request(rig, "erasure", keys=["i:carol", "e:carol@example.com"])
    # Another account's release is not this request's to touch; the rest name someone else, or nobody.
    assert await _left(rig) == ["but-bob", "everyone", "other-account-carol"]


async def test_an_accounts_erasure_deletes_all_its_releases(rig: Rig) -> None:
    await seed(rig)
    await _request(rig, "erasure", keys=None)
    assert await _left(rig) == ["industry-but-carol", "other-account-carol"]


async def test_export_lists_the_releases_naming_the_subject(rig: Rig) -> None:
    await seed(rig)
    await _request(rig, "export", keys=["e:carol@example.com"])
    [path] = list(rig.settings.resolved_export_dir().rglob("*.zip"))
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as bundle:
        stores = {name: json.loads(bundle.read(name)) for name in bundle.namelist()}
    releases = next(v for k, v in stores.items() if "control.aggregate_releases" in k)
    assert sorted(row["release_id"] for row in releases) == ["but-carol", "industry-but-carol"]
    assert "bob" not in json.dumps(releases)

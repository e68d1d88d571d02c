"""Export archives and their signed links, rectification, objection, and the query endpoints after erasure."""

from __future__ import annotations

import io
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.marketing_objections import has_objected
from tapwire_query.profile_lookup import profile_record
from tests.privacy.conftest import HEADERS, Api
from tests.privacy.seed import alias, event, profile, write

pytestmark = pytest.mark.integration


async def seed(api: Api) -> None:
    await write(
        api.rig.warehouse,
        [
            *[event("ACC-1", "Viewed", identity="ann", props={"n": i}) for i in range(25)],
            event("ACC-1", "Opened", anonymous_id="anon-ann"),
            profile("ACC-1", {"Name": "Ann", "Email": "ann@example.com", "Tier": "gold"}, identity="ann"),
            event("ACC-1", "Viewed", identity="ben", props={"secret": "ben-only"}),
            profile("ACC-1", {"Name": "Ben"}, identity="ben"),
        ],
    )
    await alias(api.rig.warehouse, "ACC-1", "a:anon-ann", "i:ann")


async def submit(api: Api, body: dict[str, Any]) -> str:
    response = await api.client.post("/privacy/v1/requests", headers=HEADERS, json=body)
    assert response.status_code == 202, response.text
    request_id: str = response.json()["id"]
    return request_id


async def test_export_archive_holds_everything_of_the_subject_and_nothing_else(api: Api) -> None:
    await seed(api)
    request_id = await submit(api, {"type": "export", "subject": {"email": "ann@example.com"}})
    await api.rig.run_until_settled()
    detail = (await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)).json()
    assert detail["status"] == "completed" and detail["export_expires_at"] == "2026-01-17T09:00:00Z"
    url = urlsplit(detail["export_url"])
    assert url.path == f"/privacy/v1/requests/{request_id}/export"

    download = await api.client.get(f"{url.path}?{url.query}")  # no credentials: the link is the credential
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    manifest = orjson.loads(archive.read("manifest.json"))
    assert manifest["request_id"] == request_id and "recipients" in manifest
    events = orjson.loads(archive.read("stores/warehouse.events.json"))
    assert len(events) == 26 and manifest["stores"]["warehouse.events"]["rows"] == 26
    assert {e["identity"] or e["anonymous_id"] for e in events} == {"ann", "anon-ann"}
    assert sorted(orjson.loads(e["properties"]).get("n", -1) for e in events) == [-1, *range(25)]
    props = orjson.loads(archive.read("stores/warehouse.profile_props.json"))
    assert {p["key"]: orjson.loads(p["value"]) for p in props} == {
        "Name": "Ann",
        "Email": "ann@example.com",
        "Tier": "gold",
    }
    aliases = orjson.loads(archive.read("stores/warehouse.user_aliases.json"))
    assert [a["alias_key"] for a in aliases] == ["a:anon-ann"]
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert b"ben" not in everything.lower()


async def test_tenant_export_holds_the_whole_account_only(api: Api) -> None:
    await seed(api)
    await write(api.rig.warehouse, [event("ACC-2", identity="zed")])
    request_id = await submit(api, {"type": "export", "scope": "tenant"})
    await api.rig.run_until_settled()
    detail = (await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)).json()
    url = urlsplit(detail["export_url"])
    archive = zipfile.ZipFile(io.BytesIO((await api.client.get(f"{url.path}?{url.query}")).content))
    events = orjson.loads(archive.read("stores/warehouse.events.json"))
    assert len(events) == 27 and {e["account_id"] for e in events} == {"ACC-1"}
    assert orjson.loads(archive.read("manifest.json"))["scope"] == "tenant"


async def test_export_link_tampering_expiry_and_retention(api: Api) -> None:
    await seed(api)
    request_id = await submit(api, {"type": "export", "subject": {"identity": "ann"}})
    await api.rig.run_until_settled()
    detail = (await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)).json()
    url = urlsplit(detail["export_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}

    forged = {**query, "signature": "0" * 64}
    assert (await api.client.get(url.path, params=forged)).status_code == 403
    later = {**query, "expires": str(int(query["expires"]) + 86_400)}
    assert (await api.client.get(url.path, params=later)).status_code == 403
    other = url.path.replace(request_id, "f" * 32)
    assert (await api.client.get(other, params=query)).status_code == 403
    assert (await api.client.get(url.path, params={})).status_code == 403

    api.rig.clock.advance(days=1, seconds=1)  # the link lives 24 hours
    expired = await api.client.get(url.path, params=query)
    assert expired.status_code == 410 and expired.json()["status"] == "fail"

    archive = api.rig.settings.resolved_export_dir() / f"{request_id}.zip"
    assert archive.exists()
    api.rig.clock.advance(days=7)
    await api.rig.worker.housekeeping()
    assert not archive.exists()
    detail = (await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)).json()
    assert detail["export_erased_at"] is not None and "export_url" not in detail
    assert "archive_key_hashes" not in (await api.rig.repository.requests.get(request_id)).progress


async def test_erasure_also_erases_earlier_exports_of_the_subject(api: Api) -> None:
    await seed(api)
    export_id = await submit(api, {"type": "export", "subject": {"identity": "ann"}})
    other_export = await submit(api, {"type": "export", "subject": {"identity": "ben"}})
    await api.rig.run_until_settled()
    directory = api.rig.settings.resolved_export_dir()
    assert (directory / f"{export_id}.zip").exists()
    erasure_id = await submit(api, {"type": "erasure", "subject": {"email": "ann@example.com"}})
    await api.rig.run_until_settled()
    assert not (directory / f"{export_id}.zip").exists()
    assert (directory / f"{other_export}.zip").exists()
    done = await api.rig.repository.requests.get(erasure_id)
    assert done.progress["stores"]["files.export_archives"]["removed"] == 1


async def test_query_endpoints_show_nothing_of_an_erased_subject(api: Api) -> None:
    await seed(api)
    before = await api.client.get("/1/profile.json?identity=ann", headers=HEADERS)
    assert before.status_code == 200
    count_body = {"event_name": "Viewed", "from": 20260101, "to": 20260131}
    assert (await api.client.post("/1/counts/events.json", headers=HEADERS, json=count_body)).json()[
        "count"
    ] == 26
    await submit(api, {"type": "erasure", "subject": {"identity": "ann"}})
    await api.rig.run_until_settled()
    for selector in ("identity=ann", "email=ann@example.com"):
        assert (await api.client.get(f"/1/profile.json?{selector}", headers=HEADERS)).status_code == 404
    assert (await api.client.post("/1/counts/events.json", headers=HEADERS, json=count_body)).json()[
        "count"
    ] == 1
    assert (await api.client.get("/1/profile.json?identity=ben", headers=HEADERS)).status_code == 200


async def test_rectification_replaces_the_profile_values_everywhere(api: Api) -> None:
    await seed(api)
    request_id = await submit(
        api,
        {
            "type": "rectify",
            "subject": {"identity": "ann"},
            "fields": {"Name": "Annabel", "Email": "annabel@example.com"},
        },
    )
    await api.rig.run_until_settled()
    assert (await api.rig.repository.requests.get(request_id)).status == "completed"
    record = await profile_record(api.rig.warehouse, account_id="ACC-1", user_key="i:ann")
    assert record is not None
    assert record["profileData"]["Name"] == "Annabel" and record["profileData"]["Tier"] == "gold"
    assert record["email"] == "annabel@example.com"
    # The old values are physically gone, not just superseded.
    old = await api.rig.warehouse.query(
        "SELECT count() AS n FROM profile_props WHERE value IN ('\"Ann\"', '\"ann@example.com\"')"
    )
    assert int(old[0]["n"]) == 0
    ben = await profile_record(api.rig.warehouse, account_id="ACC-1", user_key="i:ben")
    assert ben is not None and ben["profileData"]["Name"] == "Ben"


async def test_objection_takes_effect_at_once_and_reaches_linked_identifiers(api: Api) -> None:
    await seed(api)
    await submit(api, {"type": "objection", "subject": {"identity": "ann"}})

    async def objected(key: str) -> bool:
        async with AsyncSession(api.rig.control.engine) as session:
            return await has_objected(session, account_id="ACC-1", keys=[key])

    assert await objected("i:ann")  # before the worker has run
    assert not await objected("e:ann@example.com")
    await api.rig.run_until_settled()
    assert await objected("e:ann@example.com") and await objected("a:anon-ann")
    assert not await objected("i:ben")
    async with AsyncSession(api.rig.control.engine) as session:
        assert not await has_objected(session, account_id="ACC-2", keys=["i:ann"])

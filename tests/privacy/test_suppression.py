"""Late records of erased subjects: dropped and counted by the gateway and by the loader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tapwire_core import metrics
from tapwire_core.bus import Record
from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.control.privacy.suppression import SuppressionList
from tapwire_core.envelope import Identities, encode
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_ingest.http.upload import router as upload_router
from tapwire_ingest.loader.pipeline import Loader
from tests.fakes import FakeAccount, FakeAuthenticator, RecordingBus
from tests.privacy.conftest import Rig
from tests.privacy.seed import event, rows_naming, write

pytestmark = pytest.mark.integration

UPLOAD_HEADERS = {
    "X-CleverTap-Account-Id": "ACC-1",
    "X-CleverTap-Passcode": "pc",
    "Content-Type": "application/json",
}


def suppressed(stage: str) -> float:
    return metrics.REGISTRY.get_sample_value("tapwire_suppressed_records_total", {"stage": stage}) or 0.0


async def _ready() -> dict[str, bool]:
    return {"ok": True}


async def erase_completely(rig: Rig, key: str) -> str:
    view = await rig.repository.requests.create(
        account_id="ACC-1", type="erasure", scope="subject", channel="api", jurisdiction="gdpr", keys=[key]
    )
    await rig.run_until_settled()
    assert (await rig.repository.requests.get(view.id)).status == "completed"
    return view.id


@pytest.fixture
async def suppressions(rig: Rig) -> AsyncIterator[SuppressionList]:
    listed = SuppressionList(rig.control.engine, refresh_s=3600, clock=rig.clock)
    yield listed
    await listed.close()


async def test_the_gateway_drops_late_records_of_an_erased_subject(
    rig: Rig, suppressions: SuppressionList
) -> None:
    await write(rig.warehouse, [event("ACC-1", identity="gone", email="gone@example.com")])
    await erase_completely(rig, "i:gone")
    await suppressions.reload()
    bus = RecordingBus()
    app = create_app(
        ServiceContext(
            settings=rig.settings,
            authenticator=FakeAuthenticator({"ACC-1": ("pc", FakeAccount("ACC-1"))}),
            readiness=_ready,
            bus_=bus,
            store_=rig.control,
            suppressions=suppressions,
        ),
        [upload_router],
    )
    records = [
        {"type": "event", "identity": "gone", "evtName": "Late", "evtData": {}},
        # Named only by an identifier found linked in the closure (the email), not the one the request named.
        {"type": "profile", "objectId": "new-device", "profileData": {"Email": "gone@example.com"}},
        {"type": "event", "identity": "stays", "evtName": "Late", "evtData": {}},
    ]
    before = suppressed("gateway")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post(
            "/1/upload", headers=UPLOAD_HEADERS, content=orjson.dumps({"d": records})
        )
    assert response.status_code == 200 and response.json()["processed"] == 3
    published = [e.ids.identity for e in bus.envelopes("tapwire.events")]
    assert published == ["stays"]
    assert suppressed("gateway") - before == 2


async def test_the_loader_drops_records_already_on_the_bus(
    rig: Rig, suppressions: SuppressionList, tmp_path: Path
) -> None:
    await write(rig.warehouse, [event("ACC-1", identity="gone")])
    await erase_completely(rig, "i:gone")
    await suppressions.reload()
    bus = EmbeddedBus(tmp_path / "log")
    await bus.start()
    try:
        await bus.ensure_topic(rig.settings.events_topic, 2)
        envelopes = [event("ACC-1", "Late", identity="gone"), event("ACC-1", "Late", identity="stays")]
        await bus.publish(
            rig.settings.events_topic,
            [Record(key=e.partition_key(), value=encode(e)) for e in envelopes],
            timeout_s=5,
        )
        before = suppressed("loader")
        loader = Loader(bus=bus, warehouse=rig.warehouse, settings=rig.settings, suppressions=suppressions)
        task = asyncio.create_task(loader.run())
        for _ in range(200):
            if loader.rows_written and suppressed("loader") > before:
                break
            await asyncio.sleep(0.05)
        loader.stop()
        await task
    finally:
        await bus.close()
    assert suppressed("loader") - before == 1
    assert (await rows_naming(rig.warehouse, "ACC-1", ["gone"]))["events"] == 0
    assert (await rows_naming(rig.warehouse, "ACC-1", ["stays"]))["events"] == 1


async def test_a_tenant_erasure_suppresses_the_whole_account(rig: Rig, suppressions: SuppressionList) -> None:
    view = await rig.repository.requests.create(
        account_id="ACC-1", type="erasure", scope="tenant", channel="api", jurisdiction="gdpr", keys=[]
    )
    await rig.run_until_settled()
    assert (await rig.repository.requests.get(view.id)).status == "completed"
    await suppressions.reload()
    assert suppressions.suppressed("ACC-1", Identities(identity="anyone"))
    assert not suppressions.suppressed("ACC-2", Identities(identity="anyone"))


async def test_suppressions_expire(rig: Rig, suppressions: SuppressionList) -> None:
    await rig.repository.suppressions.add(
        account_id="ACC-1", request_id="r" * 32, keys=["e:old@example.com"], days=-1
    )
    await rig.repository.suppressions.add(
        account_id="ACC-1", request_id="r" * 32, keys=["e:new@example.com"], days=1
    )
    await suppressions.reload()
    assert suppressions.suppressed("ACC-1", Identities(email="new@example.com", identity="x"))
    assert not suppressions.suppressed("ACC-1", Identities(email="old@example.com"))

"""Messaging and the privacy worker in one assembled app (``build_app`` with both, real SQLite control store,
chDB warehouse, local SMTP sink, Twilio-shaped SMS receiver): a privacy objection stops the next campaign to
that user, an erasure strips the user's messaging rows and deletes the user's texts at the SMS provider, and the
export lists who received the user's data."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.bus.embedded_store import Retention
from tapwire_core.control.messaging.models import ConsentRow, OutboxRow
from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.routes import links_router, router
from tapwire_privacy.routes import ROUTERS as PRIVACY_ROUTERS
from tapwire_services import runtime
from tapwire_services.assembly import build_app
from tapwire_services.workers import Messaging, PrivacyWork
from tests.credentials import LOOKUP_DIGESTS
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import HEADERS, add_profiles, settings_for
from tests.messaging.servers import TwilioMessages, http_receiver, smtp_sink

pytestmark = pytest.mark.integration

USERS = ("i:ann", "i:bob", "i:cem")


@dataclass
class Suite:
    app: FastAPI
    client: httpx.AsyncClient
    store: ControlStore

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(path, headers=HEADERS, json=body)

    async def get(self, path: str) -> Any:
        response = await self.client.get(path, headers=HEADERS)
        assert response.status_code == 200, response.text
        return response.json()


@asynccontextmanager
async def suite(tmp: Path, warehouse: Warehouse, settings: Settings) -> AsyncIterator[Suite]:
    store = ControlStore(f"sqlite+aiosqlite:///{tmp / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    components = runtime.Components(
        settings=settings,
        store=store,
        # The log keeps records two seconds: an erasure completes once its last copy there is gone.
        bus=EmbeddedBus(tmp / "log", retention=Retention(max_age_s=2.0, interval_s=0.2)),
        warehouse=warehouse,
    )
    app = build_app(
        settings,
        components,
        routers=[router, links_router, *PRIVACY_ROUTERS],
        workers=[PrivacyWork, Messaging],
        embedded=False,
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://t.shop.example") as client:
                yield Suite(app, client, store)
    finally:
        await warehouse.start()  # the app closed it; the fixture that made it drops its database


async def campaign(s: Suite, name: str) -> dict[str, Any]:
    created = await s.post(
        "/1/targets/create.json",
        {"name": name, "target_mode": "email", "where": {}, "content": {"subject": name, "body": "Hello"}},
    )
    assert created.status_code == 200, created.text
    for _ in range(600):
        found = (await s.get(f"/messaging/v1/campaigns/{created.json()['id']}"))["campaign"]
        if found["status"] in ("completed", "stopped"):
            return dict(found)
        await asyncio.sleep(0.1)
    raise AssertionError(f"campaign {name} did not finish")


async def privacy_request(s: Suite, body: dict[str, Any], *, until: str | None = None) -> dict[str, Any]:
    response = await s.post("/privacy/v1/requests", body)
    assert response.status_code == 202, response.text
    path = f"/privacy/v1/requests/{response.json()['id']}"
    for _ in range(600):
        view: dict[str, Any] = await s.get(path)
        if until is None or view["status"] == until:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"privacy request did not reach {until}: {view}")


async def test_objection_erasure_and_recipients_through_the_suite(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        settings = settings_for(
            tmp_path,
            sink.url,
            privacy_poll_s=0.05,
            privacy_sweep_delay_s=0.2,
            privacy_suppression_refresh_s=0.2,
            privacy_export_dir=tmp_path / "x",
        )
        async with suite(tmp_path, warehouse, settings) as s:
            await add_profiles(warehouse, [(key, {"Email": f"{key[2:]}@example.com"}) for key in USERS])
            first = await campaign(s, "first")
            assert first["sent"] == 3

            # An objection through the privacy API: the very next campaign skips the user.
            await privacy_request(s, {"type": "objection", "subject": {"identity": "bob"}})
            second = await campaign(s, "second")
            assert second["sent"] == 2 and second["suppressed"] == 1
            got_second = {
                to
                for to, mails in sink.by_recipient().items()
                if any(m["Subject"] == "second" for m in mails)
            }
            assert got_second == {"ann@example.com", "cem@example.com"}

            # The export names the SMTP relay as a recipient of ann's data (Art. 19).
            export = await privacy_request(
                s, {"type": "export", "subject": {"identity": "ann"}}, until="completed"
            )
            archive = settings.resolved_export_dir() / f"{export['id']}.zip"
            with zipfile.ZipFile(archive) as bundle:
                manifest = json.loads(bundle.read("manifest.json"))
            assert manifest["recipients"] == [
                {
                    "recipient": "messaging.email",
                    "received": [
                        {
                            "channel": "email",
                            "provider": f"SMTP relay {sink.url.removeprefix('smtp://')}",
                            "messages": 2,
                            "addresses": ["ann@example.com"],
                        }
                    ],
                }
            ]

            # An erasure strips cem's messaging rows; ann's stay.
            await privacy_request(s, {"type": "erasure", "subject": {"identity": "cem"}}, until="completed")
            async with AsyncSession(s.store.engine) as session:
                rows = list(await session.scalars(select(OutboxRow)))
            assert not [r for r in rows if r.user_key == "i:cem" or r.address == "cem@example.com"]
            assert len([r for r in rows if r.user_key.startswith("x:") and r.address == ""]) == 2
            assert len([r for r in rows if r.address == "ann@example.com"]) == 2


async def test_erasure_deletes_the_subjects_texts_at_the_sms_provider(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    """The SIDs the SMS adapter got back are what the erasure deletes at the provider, through the assembly."""
    warehouse = await warehouse_factory("chdb")
    provider = TwilioMessages()
    with http_receiver(provider.respond) as twilio:
        url = f"http://AC1:tok@127.0.0.1:{twilio.port}/2010-04-01/Accounts/AC1/Messages.json?From=%2B15550001"
        settings = settings_for(
            tmp_path,
            None,
            sms_url=url,
            privacy_poll_s=0.05,
            privacy_sweep_delay_s=0.2,
            privacy_suppression_refresh_s=0.2,
            privacy_export_dir=tmp_path / "x",
        )
        async with suite(tmp_path, warehouse, settings) as s:
            await add_profiles(
                warehouse, [("i:ann", {"Phone": "+4915100000001"}), ("i:bob", {"Phone": "+4915100000002"})]
            )
            created = await s.post(
                "/1/targets/create.json",
                {"name": "texts", "target_mode": "sms", "where": {}, "content": {"body": "Hi"}},
            )
            assert created.status_code == 200, created.text
            for _ in range(600):
                found = (await s.get(f"/messaging/v1/campaigns/{created.json()['id']}"))["campaign"]
                if found["status"] == "completed":
                    break
                await asyncio.sleep(0.1)
            assert found["sent"] == 2
            to = {sid: form["To"] for sid, form in provider.messages.items()}
            ann = [sid for sid, number in to.items() if number == "+4915100000001"]
            assert len(ann) == 1

            view = await privacy_request(
                s, {"type": "erasure", "subject": {"identity": "ann"}}, until="completed"
            )
    assert view["recipients"]["messaging.sms"] == {
        "outcome": "notified",
        "messages": 1,
        "deleted": 1,
        "already_gone": 0,
        "without_id": 0,
        "sweep": 0,
    }
    assert [form["To"] for form in provider.messages.values()] == ["+4915100000002"]
    assert provider.deletes(twilio) == ann


async def test_an_erased_person_who_unsubscribed_gets_no_mail_when_imported_again(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    """The opt-out survives the erasure without the address: a re-imported profile with the same address (under
    a new user key) is still not mailed, while others are."""
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        settings = settings_for(
            tmp_path,
            sink.url,
            privacy_poll_s=0.05,
            privacy_sweep_delay_s=0.2,
            privacy_suppression_refresh_s=0.2,
            privacy_export_dir=tmp_path / "x",
        )
        async with suite(tmp_path, warehouse, settings) as s:
            await add_profiles(
                warehouse,
                [("i:ann", {"Email": "ann@example.com"}), ("i:dana", {"Email": "dana@example.com"})],
            )
            unsubscribed = await s.post(
                "/1/subscribe",
                {"d": [{"type": "email", "value": "Dana@Example.com", "status": "Unsubscribe"}]},
            )
            assert unsubscribed.json()["processed"] == 1
            await privacy_request(s, {"type": "erasure", "subject": {"identity": "dana"}}, until="completed")
            async with AsyncSession(s.store.engine) as session:
                kept = [(r.subject_kind, r.subject) for r in await session.scalars(select(ConsentRow))]
            assert [kind for kind, _ in kept] == ["email#"] and "dana" not in repr(kept)

            # Dana is imported again under a new user key, with the same address.
            await add_profiles(warehouse, [("i:dana-2", {"Email": "DANA@example.com"})])
            sent = await campaign(s, "after the erasure")
            assert sent["sent"] == 1 and sent["suppressed"] == 1
            assert set(sink.by_recipient()) == {"ann@example.com"}

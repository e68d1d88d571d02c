"""A web push campaign end to end: browser subscriptions uploaded as ``chrome`` tokens (as the Web SDK stores
them), a campaign with ``target_mode: webpush``, a push service that verifies VAPID and decrypts as a browser
does, the service worker's tracked links counted, a gone subscription never used again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from tapwire_core.control.messaging import consent
from tapwire_core.control.messaging.models import OutboxRow
from tapwire_core.egress import EgressPolicy
from tapwire_messaging.channels import Providers
from tapwire_messaging.channels.http_retry import RetryPolicy
from tapwire_messaging.channels.push import PushRouter
from tapwire_messaging.channels.webpush import VapidKey, WebPushAdapter
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.feedback_checks import feedback_events
from tests.messaging.rig import (
    ACCOUNT,
    Rig,
    add_profiles,
    add_push_tokens,
    messaging_rig,
    settings_for,
    wait_finished,
)
from tests.messaging.webpush_receiver import push_resolver, push_service

pytestmark = pytest.mark.integration

TRACKED = ("Notification Sent", "Notification Viewed", "Notification Clicked")


async def statuses(rig: Rig, campaign_id: int) -> dict[str, str]:
    async with rig.service.store.engine.connect() as connection:
        rows = await connection.execute(
            select(OutboxRow.user_key, OutboxRow.status).where(OutboxRow.campaign_id == campaign_id)
        )
        return {key[2:]: status for key, status in rows}


async def test_a_web_push_campaign_reaches_browsers_through_their_push_services(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    vapid = VapidKey.from_pem(VapidKey.generate_pem(), subject="mailto:ops@shop.example")
    with push_service() as service:
        adapter = WebPushAdapter(
            vapid,
            egress=EgressPolicy.parse("127.0.0.1/32"),
            resolver=push_resolver,
            ssl_context=service.client_context(),
            policy=RetryPolicy(attempts=1),
        )
        providers = Providers(push=PushRouter(None, None, adapter))
        async with messaging_rig(
            tmp_path, warehouse, settings_for(tmp_path, None), providers=providers
        ) as rig:
            ann, bob = service.subscribe(vapid.public_key), service.subscribe(vapid.public_key)
            service.gone.add(bob.endpoint.rsplit("/", 1)[1])
            await add_profiles(
                warehouse, [("i:ann", {"Name": "Ann"}), ("i:bob", {"Name": "Bob"}), ("i:cat", {})]
            )
            await add_push_tokens(
                warehouse,
                [
                    ("i:ann", ann.endpoint, "chrome"),
                    ("i:bob", bob.endpoint, "chrome"),
                    ("i:cat", "fcm-cat", "fcm"),
                ],
                keys={ann.endpoint: ann.keys, bob.endpoint: bob.keys},
            )
            campaign = {
                "name": "Web sale",
                "target_mode": "webpush",
                "where": {},
                "content": {
                    "title": "Sale",
                    "body": "Hi {{ Profile.Name }}",
                    "deep_link": "https://shop.example/sale",
                    "icon": "https://shop.example/icon.png",
                },
            }
            created = await rig.post("/1/targets/create.json", campaign)
            assert created.status_code == 200, created.text
            campaign_id = created.json()["id"]
            await wait_finished(rig, campaign_id)
            assert await statuses(rig, campaign_id) == {
                "ann": "sent",
                "bob": "unregistered",
                "cat": "no_address",
            }
            (delivered,) = service.delivered
            payload = delivered.payload
            assert payload["title"] == "Sale" and payload["deepLink"] == "https://shop.example/sale"
            assert payload["notificationOptions"]["body"] == "Hi Ann"
            assert payload["notificationOptions"]["icon"] == "https://shop.example/icon.png"
            assert payload["notificationOptions"]["data"]["wzrk_id"] == f"{campaign_id}_A"
            assert await consent.dead_tokens(
                rig.service.store.engine, account_id=ACCOUNT, tokens=[bob.endpoint]
            ) == {bob.endpoint}

            # The service worker fetches the viewed link when it shows the notification, and the click link
            # with "&r=<deep link>&b=button0&s=true" when it is clicked.
            def path(url: str) -> str:
                parts = urlsplit(url)
                return parts.path + (f"?{parts.query}" if parts.query else "")

            assert (await rig.client.get(path(payload["raiseNotificationViewedPath"]))).status_code == 200
            clicked = await rig.client.get(
                path(payload["redirectPath"]) + "&r=https%3A%2F%2Fshop.example%2Fsale&b=button0&s=true"
            )
            assert clicked.status_code == 302 and clicked.headers["location"] == "https://shop.example/sale"
            for _ in range(50):
                names = sorted(e.name for e in await feedback_events(rig, names=TRACKED))
                if "Notification Clicked" in names:
                    break
                await asyncio.sleep(0.1)
            assert {"Notification Sent", "Notification Viewed", "Notification Clicked"} <= set(names)

            # The gone subscription is not used again; the push service sees one request, for ann.
            again = (
                await rig.post(
                    "/1/send/webpush.json",
                    {"to": {"Identity": ["ann", "bob"]}, "content": campaign["content"]},
                )
            ).json()
            await wait_finished(rig, again["id"])
            assert await statuses(rig, again["id"]) == {"ann": "sent", "bob": "no_address"}
            assert len(service.delivered) == 2 and len(service.refused) == 1

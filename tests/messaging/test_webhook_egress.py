"""Webhook campaigns cannot point the suite inward: refused when saved where the URL says so, refused when
connecting where only the resolved address does; the operator's allow-list admits internal receivers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tapwire_core.control.messaging.models import OutboxRow
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import Rig, add_profiles, messaging_rig, settings_for, wait_finished
from tests.messaging.servers import http_receiver

pytestmark = pytest.mark.integration

HOOK_SECRET = "hook-secret-0123456789abcdef"


def _send(url: str) -> dict[str, Any]:
    return {
        "to": {"Identity": ["ann"]},
        "content": {"body": "hello"},
        "webhook": {"url": url, "secret": HOOK_SECRET},
    }


async def _details(rig: Rig, campaign_id: int) -> list[tuple[str, str | None]]:
    async with rig.service.store.engine.connect() as connection:
        rows = await connection.execute(
            select(OutboxRow.status, OutboxRow.detail).where(OutboxRow.campaign_id == campaign_id)
        )
        return [(str(status), detail) for status, detail in rows]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254 is link-local (cloud metadata)"),
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "private, inside an IPv6 address"),
        ("http://localhost:8080/hook", "localhost, which is this machine"),
        ("file:///etc/passwd", "http:// or https://"),
    ],
)
async def test_a_webhook_url_naming_an_internal_address_is_refused_when_saved(
    tmp_path: Path, warehouse_factory: WarehouseFactory, url: str, problem: str
) -> None:
    warehouse = await warehouse_factory("chdb")
    settings = settings_for(tmp_path, None, egress_allow=None)
    async with messaging_rig(tmp_path, warehouse, settings) as rig:
        response = await rig.post("/1/send/webhook.json", _send(url))
    assert response.status_code == 422, response.text
    assert problem in response.json()["error"]


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0x7f.0.0.1"])
async def test_a_url_that_resolves_inside_is_refused_when_connecting(
    tmp_path: Path, warehouse_factory: WarehouseFactory, host: str
) -> None:
    """Legacy IPv4 spellings look like names to a URL parser and pass the check on save; the resolver turns
    them into 127.0.0.1, which the connection refuses. Nothing reaches the receiver, and nothing retries."""
    warehouse = await warehouse_factory("chdb")
    settings = settings_for(tmp_path, None, egress_allow=None)
    with http_receiver() as receiver:
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, [("i:ann", {})])
            response = await rig.post("/1/send/webhook.json", _send(f"http://{host}:{receiver.port}/hook"))
            assert response.status_code == 200, response.text
            campaign = await wait_finished(rig, response.json()["id"])
            details = await _details(rig, campaign["id"])
    assert receiver.requests == []
    assert campaign["sent"] == 0 and campaign["failed"] == 1
    ((status, detail),) = details
    assert status == "rejected"
    assert detail is not None and "127.0.0.1 is loopback" in detail


async def test_the_operator_allow_list_admits_an_internal_receiver(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    settings = settings_for(tmp_path, None, egress_allow="127.0.0.1/32")
    with http_receiver() as receiver:
        async with messaging_rig(tmp_path, warehouse, settings) as rig:
            await add_profiles(warehouse, [("i:ann", {})])
            response = await rig.post("/1/send/webhook.json", _send(f"{receiver.url}/hook"))
            assert response.status_code == 200, response.text
            campaign = await wait_finished(rig, response.json()["id"])
    assert campaign["sent"] == 1
    assert len(receiver.requests) == 1

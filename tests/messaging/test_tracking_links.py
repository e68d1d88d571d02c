"""Tracking links: opaque tokens, an expiry for opens and clicks, one counted use per link and minute, and the
links of mail sent before tokens were encrypted."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tapwire_core.envelope import decode
from tapwire_messaging.links import UseCounter
from tapwire_messaging.signing import NEVER, BadToken, ExpiredLink, LinkSigner, LinkTarget
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import SECRET, Rig, add_profiles, messaging_rig, settings_for, wait_finished
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration

DAY = 86400.0
T0 = 1_779_999_960.0  # on a minute boundary
USER = "e:ann.private@example.com"
TARGET = LinkTarget("ACC-1", 7, "A", USER, "email", url="https://shop.example/sale?coupon=ann-2291")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def legacy_token(secret: str, purpose: str, target: LinkTarget) -> str:
    """A token as the release before encrypted tokens minted it: readable JSON and an HMAC."""
    key = hashlib.sha256(b"tapwire-links:" + secret.encode()).digest()
    payload: list[Any] = [
        target.account_id,
        target.campaign_id,
        target.variant,
        target.user_key,
        target.channel,
    ]
    if target.url is not None:
        payload.append(target.url)
    body = _b64(orjson.dumps(payload))
    mac = hmac.new(key, f"{purpose}:{body}".encode(), hashlib.sha256).digest()[:18]
    return f"{body}.{_b64(mac)}"


def test_a_token_shows_nothing_of_what_it_names() -> None:
    signer = LinkSigner(SECRET)
    token = signer.token("click", TARGET, expires_s=int(T0 + DAY))
    decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for secret_part in (USER, "ann.private", "ACC-1", "shop.example", "ann-2291"):
        assert secret_part not in token
        assert secret_part.encode() not in decoded
    assert signer.verify("click", token, now_s=T0).target == TARGET


def test_a_token_is_bound_to_its_purpose_and_cannot_be_altered() -> None:
    signer = LinkSigner(SECRET)
    token = signer.token("open", TARGET, expires_s=int(T0 + DAY))
    with pytest.raises(BadToken):
        signer.verify("click", token, now_s=T0)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-1] ^= 1
    with pytest.raises(BadToken):
        signer.verify("open", _b64(bytes(raw)), now_s=T0)
    with pytest.raises(BadToken):
        LinkSigner("another-secret-0123456789").verify("open", token, now_s=T0)
    for garbage in ("", "!!!", "AQ", "a.b", "x" * 40):
        with pytest.raises(BadToken):
            signer.verify("open", garbage, now_s=T0)


def test_a_token_expires_unless_minted_to_last() -> None:
    signer = LinkSigner(SECRET)
    token = signer.token("click", TARGET, expires_s=int(T0 + DAY))
    assert signer.verify("click", token, now_s=T0 + DAY).target == TARGET
    with pytest.raises(ExpiredLink):
        signer.verify("click", token, now_s=T0 + DAY + 1)
    lasting = signer.token("unsubscribe", TARGET, expires_s=NEVER)
    assert signer.verify("unsubscribe", lasting, now_s=T0 + 10_000 * DAY).expires_s == NEVER


def test_a_legacy_token_verifies_and_says_so() -> None:
    signer = LinkSigner(SECRET)
    link = signer.verify("click", legacy_token(SECRET, "click", TARGET), now_s=T0)
    assert link.legacy and link.target == TARGET
    with pytest.raises(BadToken):
        signer.verify("open", legacy_token(SECRET, "click", TARGET), now_s=T0)
    with pytest.raises(BadToken):
        signer.verify("click", legacy_token("another-secret-0123456789", "click", TARGET), now_s=T0)


def test_the_use_counter_admits_one_use_per_link_and_minute_in_bounded_memory() -> None:
    counter = UseCounter(window_s=60, capacity=3)
    first = counter.admit("tok-a", 120.0)
    assert first is not None
    assert counter.admit("tok-a", 179.9) is None
    again = counter.admit("tok-a", 180.0)
    assert again is not None and again != first
    for name in ("tok-b", "tok-c", "tok-d"):
        assert counter.admit(name, 180.0) is not None
    assert len(counter._last) == 3
    # tok-a was the oldest and was forgotten: it counts again (the warehouse still keeps one per minute).
    assert counter.admit("tok-a", 181.0) == again


class _Clock:
    """The service's clock, moved by hand in epoch seconds."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


async def _send_one(rig: Rig, sink: Any) -> tuple[str, str, str, int]:
    """Sends one HTML email to ann; its click, pixel and unsubscribe paths, and the campaign id."""
    await add_profiles(rig.warehouse, [("i:ann", {"Email": "ann@example.com"})])
    created = await rig.post(
        "/1/targets/create.json",
        {
            "name": "html",
            "target_mode": "email",
            "where": {},
            "content": {
                "subject": "Sale",
                "body": "Sale",
                "html": '<a href="https://shop.example/sale">Sale</a>',
            },
        },
    )
    campaign_id = created.json()["id"]
    await wait_finished(rig, campaign_id)
    (mail,) = sink.receipts
    html = mail.get_body(preferencelist=("html",)).get_content()
    click = re.search(r'href="https://t\.shop\.example(/m/c/[^"]+)"', html)
    pixel = re.search(r'src="https://t\.shop\.example(/m/o/[^"]+)"', html)
    unsubscribe = re.fullmatch(r"<https://t\.shop\.example(/m/u/[^>]+)>", str(mail["List-Unsubscribe"]))
    assert click and pixel and unsubscribe
    for path in (click.group(1), pixel.group(1), unsubscribe.group(1)):
        assert "ann" not in path and "i:" not in path
        token = path.split("/")[3].removesuffix(".gif")
        assert b"ann" not in base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return click.group(1), pixel.group(1), unsubscribe.group(1), campaign_id


async def _feedback(rig: Rig) -> list[Any]:
    bus = rig.service.bus
    assert bus is not None
    consumer = bus.consumer([rig.settings.events_topic], "test-links")
    await consumer.start()
    found: list[Any] = []
    try:
        for _ in range(5):
            batch = await consumer.fetch(100, 0.1)
            found += [decode(d.value) for d in batch]
    finally:
        await consumer.close()
    return [e for e in found if e.name in ("Notification Clicked", "Notification Viewed")]


async def test_open_and_click_links_expire_after_the_configured_time_unsubscribe_links_do_not(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    clock = _Clock(T0)
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url, messaging_link_ttl_days=2)
        async with messaging_rig(tmp_path, warehouse, settings, clock=clock) as rig:
            click, pixel, unsubscribe, _ = await _send_one(rig, sink)
            clock.now = T0 + 2 * DAY - 60
            assert (await rig.client.get(click)).status_code == 302
            assert (await rig.client.get(pixel)).status_code == 200
            clock.now = T0 + 2 * DAY + 60
            expired_click = await rig.client.get(click)
            assert expired_click.status_code == 410, expired_click.text
            assert "location" not in expired_click.headers
            assert (await rig.client.get(pixel)).status_code == 410
            events_before = rig.service.publisher.published
            clock.now = T0 + 400 * DAY
            assert (await rig.client.get(unsubscribe)).status_code == 200
            done = await rig.client.post(unsubscribe, content=b"List-Unsubscribe=One-Click")
            assert done.status_code == 200 and done.json()["status"] == "success"
            assert rig.service.publisher.published == events_before + 1  # the unsubscribe alone


async def test_a_click_counts_once_per_link_and_minute(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    clock = _Clock(T0)
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url)
        async with messaging_rig(tmp_path, warehouse, settings, clock=clock) as rig:
            click, pixel, _, campaign_id = await _send_one(rig, sink)
            published = rig.service.publisher.published
            for second in range(0, 50, 5):
                clock.now = T0 + 120 + second
                response = await rig.client.get(click)
                assert response.status_code == 302
                assert response.headers["location"] == "https://shop.example/sale"
                await rig.client.get(pixel)
            assert rig.service.publisher.published == published + 2  # one click, the first open
            clock.now = T0 + 185
            await rig.client.get(click)
            await rig.client.get(pixel)
            assert rig.service.publisher.published == published + 3  # a click in the next minute
            events = await _feedback(rig)
            result = await rig.post("/1/targets/result.json", {"id": campaign_id})
    clicks = [e for e in events if e.name == "Notification Clicked"]
    assert len(clicks) == 2 and len({e.event_id for e in clicks}) == 2
    assert len([e for e in events if e.name == "Notification Viewed"]) == 1
    assert result.json()["result"]["clicked"] == 1  # users who clicked


async def test_links_minted_before_encryption_keep_working_until_their_campaign_ages_out(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    clock = _Clock(T0)
    with smtp_sink() as sink:
        settings = settings_for(tmp_path, sink.url, messaging_link_ttl_days=2)
        async with messaging_rig(tmp_path, warehouse, settings, clock=clock) as rig:
            _, _, _, campaign_id = await _send_one(rig, sink)
            campaign = await rig.service.campaigns.get(campaign_id)
            assert campaign is not None
            target = LinkTarget(campaign.account_id, campaign_id, "A", "i:ann", "email")
            old_link = dataclasses.replace(target, url="https://shop.example/old")
            click = f"/m/c/{legacy_token(SECRET, 'click', old_link)}"
            unsubscribe = f"/m/u/{legacy_token(SECRET, 'unsubscribe', target)}"
            unknown = LinkTarget(
                campaign.account_id, campaign_id + 99, "A", "i:ann", "email", url="https://x.example"
            )
            assert (await rig.client.get(f"/m/c/{legacy_token(SECRET, 'click', unknown)}")).status_code == 404
            clock.now = campaign.cutoff_ms / 1000 + 2 * DAY - 60
            old_click = await rig.client.get(click)
            assert (
                old_click.status_code == 302 and old_click.headers["location"] == "https://shop.example/old"
            )
            clock.now = campaign.cutoff_ms / 1000 + 2 * DAY + 60
            assert (await rig.client.get(click)).status_code == 410
            done = await rig.client.post(unsubscribe, content=b"List-Unsubscribe=One-Click")
            assert done.status_code == 200

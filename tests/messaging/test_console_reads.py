"""Messaging's reads for the console: the content preview for a sample person, one person's consent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tapwire_core.control.messaging import consent
from tapwire_core.control.store import ControlStore
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_messaging.consent_routes import router as consent_router
from tapwire_messaging.preview_routes import router as preview_router
from tapwire_services.accounts import directory_for
from tests.credentials import LOOKUP_DIGESTS

HEADERS = {"X-CleverTap-Account-Id": "ACC-1", "X-CleverTap-Passcode": "passcode-one-1234567"}


async def _ready() -> dict[str, bool]:
    return {"test": True}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ControlStore]]:
    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    await store.upsert_account(
        "ACC-1", passcode="passcode-one-1234567", write_key="write-key-1-1234567", region="eu1"
    )
    await store.upsert_account(
        "ACC-2", passcode="passcode-two-1234567", write_key="write-key-2-1234567", region="eu1"
    )
    context = ServiceContext(
        settings=Settings(), authenticator=directory_for(store), readiness=_ready, store_=store
    )
    app = create_app(context, [preview_router, consent_router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://m", headers=HEADERS
    ) as http:
        yield http, store
    await store.close()


async def test_preview_renders_liquid_for_the_sample_profile_and_escapes_html(
    client: tuple[httpx.AsyncClient, ControlStore],
) -> None:
    http, _ = client
    answer = await http.post(
        "/messaging/v1/preview",
        json={
            "content": {
                "subject": "Hi {{ Profile.Name | default: 'there' }}",
                "html": "<p>{{ Profile.Name }}</p>",
            },
            "profile": {"Name": "<b>Ann</b>"},
            "campaign_name": "Spring",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rendered"] == {"subject": "Hi <b>Ann</b>", "html": "<p>&lt;b&gt;Ann&lt;/b&gt;</p>"}
    empty = await http.post(
        "/messaging/v1/preview", json={"content": {"subject": "Hi {{ Profile.Name | default: 'there' }}"}}
    )
    assert empty.json()["rendered"]["subject"] == "Hi there"
    broken = await http.post("/messaging/v1/preview", json={"content": {"body": "{% if %}"}})
    assert broken.status_code == 422 and broken.json()["error"].startswith("content.body")


async def test_consent_lists_the_persons_entries_only(client: tuple[httpx.AsyncClient, ControlStore]) -> None:
    http, store = client
    seeds: list[tuple[str, consent.SubjectKind, str, consent.ConsentState]] = [
        ("ACC-1", "email", "Ann@Example.com", "unsubscribed"),
        ("ACC-1", "user", "i:ann", "subscribed"),
        ("ACC-1", "email", "bob@example.com", "unsubscribed"),
        ("ACC-2", "email", "ann@example.com", "unsubscribed"),
    ]
    for account, kind, subject, state in seeds:
        await consent.set_consent(
            store.engine,
            account_id=account,
            kind=kind,
            subject=subject,
            channel="email",
            state=state,
            source="test",
            now_ms=1,
        )
    answer = await http.get("/messaging/v1/consent", params={"user_key": "i:ann", "email": "ANN@example.com"})
    entries = {(e["subject_kind"], e["subject"], e["state"]) for e in answer.json()["consent"]}
    assert entries == {("email", "ann@example.com", "unsubscribed"), ("user", "i:ann", "subscribed")}
    assert (await http.get("/messaging/v1/consent")).status_code == 400

"""Recipients (Art. 19): erasure and rectification forwarded where possible, impossibility recorded, exports
list who received the data."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from tapwire_core.privacy.data_recipients import Forwarded, ForwardImpossible
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.registry import default_registry
from tapwire_privacy.worker import PrivacyWorker
from tests.privacy.conftest import Rig
from tests.privacy.seed import event, profile, write

pytestmark = pytest.mark.integration


class Provider:
    """A recipient that got messages for some addresses; it may or may not have a deletion API.

    ``received`` reads what our delivery records say was sent, and like the outbox those records no longer name
    the subject once it is erased: a second sweep finds nothing more to forward unless something new was sent."""

    def __init__(self, name: str, addresses: set[str], *, api: bool) -> None:
        self.name = name
        self._addresses = addresses
        self._api = api
        self.forwarded: list[tuple[Forwarded, frozenset[str], dict[str, Any] | None]] = []

    async def received(self, scope: Scope) -> list[dict[str, Any]]:
        keys = scope.keys or frozenset()
        return [{"message_to": address} for address in sorted(self._addresses & keys)]

    async def forward(self, action: Forwarded, scope: Scope, fields: Mapping[str, Any] | None) -> None:
        if action == "erasure":
            self._addresses -= scope.keys or frozenset()
        if not self._api:
            raise ForwardImpossible("the provider offers no deletion or correction API")
        self.forwarded.append((action, scope.keys or frozenset(), None if fields is None else dict(fields)))


@pytest.fixture
def providers() -> tuple[Provider, Provider, Provider]:
    return (
        Provider("messaging.email", {"e:ann@example.com"}, api=True),
        Provider("messaging.sms", {"p:+4915100000009"}, api=False),
        Provider("messaging.push", {"o:someone-else"}, api=True),
    )


@pytest.fixture
def worker(rig: Rig, providers: tuple[Provider, ...]) -> PrivacyWorker:
    registry = default_registry(
        warehouse=rig.warehouse,
        engine=rig.control.engine,
        export_dir=rig.settings.resolved_export_dir(),
        data_recipients=providers,
    )
    rig.worker = PrivacyWorker(
        repository=rig.repository, registry=registry, settings=rig.settings, clock=rig.clock
    )
    return rig.worker


async def seed(rig: Rig) -> None:
    await write(
        rig.warehouse,
        [
            event("ACC-1", identity="ann"),
            profile("ACC-1", {"Email": "ann@example.com", "Phone": "+4915100000009"}, identity="ann"),
        ],
    )


async def test_erasure_is_forwarded_or_recorded_as_impossible(
    rig: Rig, worker: PrivacyWorker, providers: tuple[Provider, Provider, Provider]
) -> None:
    email, _, push = providers
    await seed(rig)
    view = await rig.repository.requests.create(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["i:ann"],
    )
    await rig.run_until_settled()
    assert (await rig.repository.requests.get(view.id)).status == "completed"
    assert [(action, "e:ann@example.com" in keys) for action, keys, _ in email.forwarded] == [
        ("erasure", True)
    ]
    assert push.forwarded == []
    trail = [(e["action"], e["store"], e["detail"]) for e in await rig.repository.audit.trail(view.id)]
    assert ("recipient_notified", "messaging.email", {"action": "erasure"}) in trail
    assert (
        "recipient_not_notified",
        "messaging.sms",
        {"action": "erasure", "reason": "the provider offers no deletion or correction API"},
    ) in trail
    assert not any(store == "messaging.push" for _, store, _ in trail)


async def test_rectification_is_forwarded(
    rig: Rig, worker: PrivacyWorker, providers: tuple[Provider, Provider, Provider]
) -> None:
    email = providers[0]
    await seed(rig)
    view = await rig.repository.requests.create(
        account_id="ACC-1",
        type="rectify",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["i:ann"],
        payload={"fields": {"Name": "Ann B."}},
    )
    await rig.run_until_settled()
    assert (await rig.repository.requests.get(view.id)).status == "completed"
    assert [(action, fields) for action, _, fields in email.forwarded] == [("rectify", {"Name": "Ann B."})]


async def test_export_lists_the_recipients(rig: Rig, worker: PrivacyWorker) -> None:
    await seed(rig)
    view = await rig.repository.requests.create(
        account_id="ACC-1", type="export", scope="subject", channel="api", jurisdiction="gdpr", keys=["i:ann"]
    )
    await rig.run_until_settled()
    archive = zipfile.ZipFile(
        io.BytesIO((rig.settings.resolved_export_dir() / f"{view.id}.zip").read_bytes())
    )
    manifest = orjson.loads(archive.read("manifest.json"))
    assert manifest["recipients"] == [
        {"recipient": "messaging.email", "received": [{"message_to": "e:ann@example.com"}]},
        {"recipient": "messaging.sms", "received": [{"message_to": "p:+4915100000009"}]},
    ]

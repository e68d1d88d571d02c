"""Notices reach the customer's webhook (a real HTTP server on 127.0.0.1); failures are retried, never lost;
CCPA requests are acknowledged to the customer on receipt."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tapwire_core import metrics
from tapwire_core.egress import policy_from_settings
from tapwire_privacy.notices import WebhookNotifier
from tapwire_privacy.worker import PrivacyWorker
from tests.privacy.conftest import HEADERS, Api, Rig

pytestmark = pytest.mark.integration


class _Hook:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200


@pytest.fixture
def webhook() -> Iterator[tuple[str, _Hook]]:
    hook = _Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append(orjson.loads(body))
            self.send_response(hook.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", hook
    finally:
        server.shutdown()
        server.server_close()


async def test_extension_and_referral_notices_reach_the_webhook(rig: Rig, webhook: tuple[str, _Hook]) -> None:
    url, hook = webhook
    await rig.control.upsert_account(
        "ACC-1",
        passcode="passcode-1-0123456789",
        write_key="writekey-1-0123456789",
        region="eu1",
        settings={"privacy_webhook_url": url},
    )
    notifier = WebhookNotifier(rig.control.get_account, egress=policy_from_settings(rig.settings))
    worker = PrivacyWorker(
        repository=rig.repository,
        registry=rig.registry,
        settings=rig.settings,
        clock=rig.clock,
        notifier=notifier,
    )
    try:
        referred = await rig.repository.create(
            account_id="ACC-1",
            type="erasure",
            scope="subject",
            channel="direct",
            jurisdiction="gdpr",
            keys=["e:someone-9931@example.com"],
            status="referred",
        )
        hook.status = 503
        await worker.deliver_notices()
        assert len(hook.received) == 1
        pending = await rig.repository.notices_for(referred.id)
        assert pending[0]["delivered"] is False and pending[0]["last_error"] == "webhook answered HTTP 503"

        hook.status = 200
        await worker.deliver_notices()
        assert len(hook.received) == 1  # backing off: not yet due again
        rig.clock.advance(minutes=2)
        await worker.deliver_notices()
        assert len(hook.received) == 2
        assert (await rig.repository.notices_for(referred.id))[0]["delivered"] is True

        await rig.repository.extend(
            account_id="ACC-1", request_id=referred.id, months=1, reason="backlog of merges"
        )
        await worker.deliver_notices()
        extension = hook.received[-1]
        assert extension["event"] == "privacy.extension" and extension["reason"] == "backlog of merges"
        assert extension["extended_until"].startswith("2026-03-10")
        assert all("someone-9931" not in orjson.dumps(n).decode() for n in hook.received)
    finally:
        await notifier.close()


async def test_an_account_without_a_webhook_keeps_its_notices_queued(rig: Rig) -> None:
    notifier = WebhookNotifier(rig.control.get_account, egress=policy_from_settings(rig.settings))
    worker = PrivacyWorker(
        repository=rig.repository,
        registry=rig.registry,
        settings=rig.settings,
        clock=rig.clock,
        notifier=notifier,
    )
    try:
        view = await rig.repository.create(
            account_id="ACC-2",
            type="export",
            scope="subject",
            channel="direct",
            jurisdiction="gdpr",
            keys=["i:x"],
            status="referred",
        )
        await worker.deliver_notices()
        notice = (await rig.repository.notices_for(view.id))[0]
        assert (
            notice["delivered"] is False
            and notice["last_error"] == "no privacy webhook configured for the account"
        )
    finally:
        await notifier.close()


async def test_a_ccpa_request_is_acknowledged_to_the_customer(
    api: Api, webhook: tuple[str, _Hook], caplog: pytest.LogCaptureFixture
) -> None:
    url, hook = webhook
    rig = api.rig
    await rig.control.upsert_account(
        "ACC-1",
        passcode="passcode-1-0123456789",
        write_key="writekey-1-0123456789",
        region="eu1",
        settings={"privacy_jurisdiction": "ccpa", "privacy_webhook_url": url},
    )
    notifier = WebhookNotifier(rig.control.get_account, egress=policy_from_settings(rig.settings))
    worker = PrivacyWorker(
        repository=rig.repository,
        registry=rig.registry,
        settings=rig.settings,
        clock=rig.clock,
        notifier=notifier,
    )
    try:
        created = await api.client.post(
            "/privacy/v1/requests",
            headers=HEADERS,
            json={"type": "erasure", "subject": {"email": "kim-4471@example.com"}},
        )
        request_id = created.json()["id"]
        detail = (await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)).json()
        assert [n["kind"] for n in detail["notices"]] == ["acknowledgement"]
        assert detail["acknowledged_at"] is None
        assert [a["detail"] for a in detail["audit"] if a["action"] == "acknowledgement_queued"] == [
            {"acknowledge_by": "2026-01-23T23:59:59.999999Z"}
        ]

        # The customer's endpoint is down past the 10 business days: the lateness is counted and logged.
        hook.status = 503
        await worker.deliver_notices()
        rig.clock.advance(days=14)
        with caplog.at_level("WARNING"):
            await worker.refresh_deadline_metrics()
        assert metrics.REGISTRY.get_sample_value("tapwire_privacy_acknowledgements_overdue") == 1
        late = [
            r for r in caplog.records if r.getMessage() == "privacy acknowledgement not delivered in time"
        ]
        assert [r.__dict__["request"] for r in late] == [request_id]

        hook.status = 200
        await worker.deliver_notices()
        acknowledgement = hook.received[-1]
        assert len(hook.received) == 2
        assert acknowledgement["event"] == "privacy.acknowledgement"
        assert acknowledgement["request_id"] == request_id and acknowledgement["jurisdiction"] == "ccpa"
        assert acknowledgement["received_at"] == "2026-01-10T09:00:00Z"
        assert acknowledgement["acknowledge_by"] == "2026-01-23T23:59:59.999999Z"
        assert acknowledgement["due_at"].startswith("2026-02-24")
        assert "2026-02-24" in acknowledgement["text"] and "90 days" in acknowledgement["text"]
        assert "kim-4471" not in orjson.dumps(hook.received).decode()

        detail = (await api.client.get(f"/privacy/v1/requests/{request_id}", headers=HEADERS)).json()
        assert detail["acknowledged_at"] == "2026-01-24T09:00:00Z"
        delivered = [a for a in detail["audit"] if a["action"] == "notice_delivered"]
        assert [a["detail"]["kind"] for a in delivered] == ["acknowledgement"]
        assert "kim-4471" not in orjson.dumps(detail["audit"]).decode()
        await worker.refresh_deadline_metrics()
        assert metrics.REGISTRY.get_sample_value("tapwire_privacy_acknowledgements_overdue") == 0

        # GDPR has no acknowledgement duty: no such notice for another account's request.
        gdpr = await rig.repository.create(
            account_id="ACC-2",
            type="export",
            scope="subject",
            channel="api",
            jurisdiction="gdpr",
            keys=["i:x"],
        )
        assert await rig.repository.notices_for(gdpr.id) == []
    finally:
        await notifier.close()


@pytest.mark.parametrize("ccpa", [False, True])
async def test_a_webhook_leading_inside_gets_no_notice_and_says_why(
    rig: Rig, webhook: tuple[str, _Hook], ccpa: bool
) -> None:
    """Without the operator's allow-list, a customer's privacy webhook on this machine (named ``localhost``,
    resolved by the system) or at the cloud metadata address (a name a hostile DNS answers with it) is never
    posted to; the notice stays queued with the refusal as its error."""
    url, hook = webhook
    metadata_url = "http://hooks.customer.example/notice"

    async def resolve(host: str, port: int) -> list[str]:
        return ["169.254.169.254"] if host == "hooks.customer.example" else ["127.0.0.1"]

    for account, hook_url, resolver, reason in (
        ("ACC-L", url.replace("127.0.0.1", "localhost"), None, "127.0.0.1 is loopback"),
        ("ACC-M", metadata_url, resolve, "169.254.169.254 is link-local (cloud metadata)"),
    ):
        settings: dict[str, Any] = {"privacy_webhook_url": hook_url}
        if ccpa:
            settings["privacy_jurisdiction"] = "ccpa"
        await rig.control.upsert_account(
            account,
            passcode=f"passcode-{account}-0123456789",
            write_key=f"writekey-{account}-0123456789",
            region="eu1",
            settings=settings,
        )
        notifier = (
            WebhookNotifier(rig.control.get_account)
            if resolver is None
            else WebhookNotifier(rig.control.get_account, resolver=resolver)
        )
        worker = PrivacyWorker(
            repository=rig.repository,
            registry=rig.registry,
            settings=rig.settings,
            clock=rig.clock,
            notifier=notifier,
        )
        try:
            view = await rig.repository.create(
                account_id=account,
                type="export",
                scope="subject",
                channel="direct",
                jurisdiction="ccpa" if ccpa else "gdpr",
                keys=["i:x"],
                status="referred",
            )
            await worker.deliver_notices()
            notices = await rig.repository.notices_for(view.id)
            assert notices, "the request queued no notice"
            for notice in notices:
                assert notice["delivered"] is False
                assert notice["last_error"].startswith("webhook refused:"), notice["last_error"]
                assert reason in notice["last_error"]
        finally:
            await notifier.close()
    assert hook.received == []

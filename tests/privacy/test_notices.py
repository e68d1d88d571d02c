"""Notices reach the customer's webhook (a real HTTP server on 127.0.0.1); failures are retried, never lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tapwire_privacy.notices import WebhookNotifier
from tapwire_privacy.worker import PrivacyWorker
from tests.privacy.conftest import Rig

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
        "ACC-1", passcode="passcode-1", write_key="wk-1", region="eu1", settings={"privacy_webhook_url": url}
    )
    notifier = WebhookNotifier(rig.control.get_account)
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
    notifier = WebhookNotifier(rig.control.get_account)
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

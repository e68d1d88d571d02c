"""What the in-app and inbox hook adds to a Web SDK request on the gateway: the CPU of ``_add_messages`` (the
filter check for messages waiting) and ``attributed`` (the check for the SDK's notification events), with nothing
waiting anywhere and with a filter of a million waiting keys, none of them the request's. In-process, against a
SQLite control store and a recording bus; the figure is CPU time per request, the best of five passes of 50,000
calls, minus the answer's construction alone. ``python -m tests.bench.sdk_message_hook``."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import tapwire_ingest.http.websdk as W
from tapwire_core.control.store import ControlStore
from tapwire_core.envelope import Envelope, Identities
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.clevertap_sdk import answers
from tapwire_ingest.clevertap_sdk.sdk_messages import attributed
from tapwire_ingest.clevertap_sdk.state import sdk_state
from tapwire_ingest.clevertap_sdk.web_request import parse_web_request
from tests.credentials import LOOKUP_DIGESTS
from tests.fakes import FakeAuthenticator, RecordingBus
from tests.websdk.requests import event, sdk_url
from tests.websdk.sdk_encoder import SdkEncoder


async def ready() -> dict[str, bool]:
    return {"fake": True}


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, SdkEncoder() as encoder:
        store = ControlStore(f"sqlite+aiosqlite:///{Path(tmp) / 'c.db'}", lookup_digests=LOOKUP_DIGESTS)
        await store.start()
        context = ServiceContext(
            settings=Settings(),
            authenticator=FakeAuthenticator({}),
            readiness=ready,
            bus_=RecordingBus(),
            store_=store,
        )
        app = create_app(context, [W.router])
        state = sdk_state(app)
        url = sdk_url(
            encoder, "push", event("Product Viewed", {"n": 1}), account_id="A1", device_id="f" * 32, rn=3
        )
        web = parse_web_request(urlsplit(url).query.encode(), max_query_bytes=49152, max_payload_chars=262144)
        env = [
            Envelope(
                account_id="A1",
                event_id="x",
                kind="event",
                ids=Identities(object_id="f" * 32),
                client_ts=1,
                received_ts=1,
                source="clevertap",
                name="Product Viewed",
                properties={"n": 1},
            )
        ]
        await state.sdk_messages.fresh()
        n = 50000
        for label in ("empty filter", "1M keys in the filter"):
            if label.startswith("1M"):
                for i in range(1_000_000):
                    state.sdk_messages._filter.add(("A1", f"o:{i:032x}"))
            best = 1e9
            for _ in range(5):
                t = time.process_time()
                for _ in range(n):
                    answer = answers.SdkAnswer(device_id="f" * 32, session_id=1, request_number=3)
                    await W._add_messages(context, state, web, answer, account_settings={}, account_id="A1")
                    await attributed(context, "A1", env)
                best = min(best, (time.process_time() - t) / n * 1e6)
            base = 1e9
            for _ in range(5):
                t = time.process_time()
                for _ in range(n):
                    answer = answers.SdkAnswer(device_id="f" * 32, session_id=1, request_number=3)
                best_ = (time.process_time() - t) / n * 1e6
                base = min(base, best_)
            print(f"{label}: hook {best - base:.2f} us per request")
        await store.close()


asyncio.run(main())

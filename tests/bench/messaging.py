"""Messaging benchmark: a campaign to N recipients over SMTP to a local sink running in its own process.

``python -m tests.bench.messaging`` (``BENCH_MESSAGING_USERS``, default 100000) prints one JSON line:
``messaging_msgs_per_s`` (sustained: first to last message at the sink), ``messaging_duplicates`` (deliveries
beyond one per recipient), ``messaging_opted_out_skipped_pct`` and ``unsubscribe_to_suppression_ms`` (slowest of
20 one-click unsubscribes during a running campaign, from the start of the POST until the send-time check
refuses the user) and ``unsubscribe_sends_after_post`` (messages that reached an unsubscribed user after their
POST was answered; 0 expected).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

from tapwire_core.control.messaging import consent
from tapwire_core.settings import Settings
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import migrate
from tests.integration.processes import free_port
from tests.messaging.rig import ACCOUNT, HEADERS, add_profiles, messaging_rig, settings_for

USERS = int(os.environ.get("BENCH_MESSAGING_USERS", "100000"))
OPTED_OUT_EVERY = 100
UNSUBSCRIBERS = 20
# BENCH_MESSAGING_PIPELINING=0 runs the sink without PIPELINING (one round trip per SMTP command).
SENDERS = int(os.environ.get("BENCH_MESSAGING_SENDERS", "64"))
SMTP_POOL = int(os.environ.get("BENCH_MESSAGING_SMTP_POOL", "8"))
CLAIM_BATCH = int(os.environ.get("BENCH_MESSAGING_CLAIM_BATCH", "500"))
SINK_FLAGS = [] if os.environ.get("BENCH_MESSAGING_PIPELINING", "1") == "1" else ["--no-pipelining"]


def log(message: str) -> None:
    print(f"[bench:messaging] {message}", file=sys.stderr, flush=True)


class SinkProcess:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.out = work / "receipts.tsv"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.messaging.sink_process",
                str(self.port),
                str(self.out),
                *SINK_FLAGS,
            ],
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()

    def receipts(self) -> list[tuple[float, str, str]]:
        """Stop the sink and read what it accepted (and how much CPU it used, in ``cpu_s``)."""
        self.proc.terminate()
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime
        rows = []
        for line in self.out.read_text().splitlines():
            ts, to, mid = line.split("\t")
            rows.append((float(ts), to, mid))
        return rows


async def wait_finished(client: httpx.AsyncClient, campaign_id: int) -> dict[str, Any]:
    while True:
        response = await client.get(f"/messaging/v1/campaigns/{campaign_id}", headers=HEADERS)
        campaign: dict[str, Any] = response.json()["campaign"]
        if campaign["status"] in ("completed", "stopped") and campaign["pending"] == 0:
            return campaign
        # Polled once a second (as a dashboard would), so the harness takes little from the sender's CPU.
        await asyncio.sleep(1.0)


async def run(work: Path) -> dict[str, Any]:
    sink = SinkProcess(work)
    warehouse = ChdbWarehouse(work / "chdb")
    await warehouse.start()
    await migrate(warehouse, cluster=None)
    settings: Settings = settings_for(
        work,
        f"smtp://127.0.0.1:{sink.port}?pool={SMTP_POOL}",
        messaging_senders=SENDERS,
        messaging_claim_batch=CLAIM_BATCH,
        # The service's default poll interval (the test rig polls faster to keep tests short).
        messaging_poll_s=Settings.model_fields["messaging_poll_s"].default,
    )
    settings.log_level = "WARNING"
    profiles = [
        (
            f"i:user{i}",
            {"Email": f"user{i}@example.com", "Name": f"User {i}"}
            | ({"MSG-email": False} if i % OPTED_OUT_EVERY == 0 else {}),
        )
        for i in range(USERS)
    ]
    for start in range(0, USERS, 50_000):
        await add_profiles(warehouse, profiles[start : start + 50_000])
    log(f"{USERS} profiles in the warehouse")
    async with messaging_rig(work, warehouse, settings) as rig:
        client = rig.client
        campaign = {
            "name": "bench",
            "target_mode": "email",
            "where": {},
            "content": {"subject": "Hi {{ Profile.Name }}", "body": "Deals for {{ Profile.Name }}"},
        }
        started = time.time()
        cpu_started = time.process_time()
        created = await client.post("/1/targets/create.json", headers=HEADERS, json=campaign)
        first = await wait_finished(client, created.json()["id"])
        end_to_end_s = time.time() - started
        sender_cpu_s = time.process_time() - cpu_started
        log(f"campaign: {first['sent']} sent in {end_to_end_s:.1f}s end to end")

        # Unsubscribes during a running campaign: from the POST until the send-time check refuses the user.
        targets = [f"i:user{i}" for i in range(1, 20 * UNSUBSCRIBERS, 20)][:UNSUBSCRIBERS]
        second = await client.post(
            "/1/targets/create.json",
            headers=HEADERS,
            json=campaign | {"name": "bench-2", "throttle_per_s": 500, "where": {}},
        )
        second_id = second.json()["id"]
        signer = rig.service.links
        from tapwire_messaging.signing import LinkTarget

        latencies, posted_at = [], {}
        for user in targets:
            token_url = signer.unsubscribe(LinkTarget(ACCOUNT, second_id, "A", user, "email"))
            path = token_url.removeprefix(signer.base)
            began = time.perf_counter()
            response = await client.post(path, content=b"List-Unsubscribe=One-Click")
            assert response.status_code == 200, response.text
            posted_at[user] = time.time()
            for _ in range(100_000):
                refused = await consent.blocked(
                    rig.service.store.engine,
                    account_id=ACCOUNT,
                    recipients=[consent.Recipient(user, "email", email=f"{user[2:]}@example.com")],
                )
                if refused == {0}:
                    break
                await asyncio.sleep(0.001)
            latencies.append((time.perf_counter() - began) * 1000)
        await client.post("/1/targets/stop.json", headers=HEADERS, json={"id": second_id})
        await wait_finished(client, second_id)
    await warehouse.close()
    receipts = sink.receipts()

    first_batch = [r for r in receipts if r[2]]
    campaign_one = first_batch[: first["sent"]]
    times = sorted(ts for ts, _, _ in campaign_one)
    sustained = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    per_recipient = Counter(to for _, to, _ in campaign_one)
    duplicates = sum(n - 1 for n in per_recipient.values())
    opted_out = {f"user{i}@example.com" for i in range(0, USERS, OPTED_OUT_EVERY)}
    reached_opted_out = opted_out & set(per_recipient)
    late = [
        to
        for ts, to, _ in receipts[first["sent"] :]
        if f"i:{to.split('@')[0]}" in posted_at and ts > posted_at[f"i:{to.split('@')[0]}"]
    ]
    return {
        "messaging_msgs_per_s": round(sustained),
        "messaging_end_to_end_msgs_per_s": round(first["sent"] / end_to_end_s),
        "messaging_duplicates": duplicates,
        "messaging_recipients": USERS,
        "messaging_sent": first["sent"],
        "messaging_opted_out_skipped_pct": round(100 * (1 - len(reached_opted_out) / len(opted_out)), 2),
        "unsubscribe_to_suppression_ms": round(max(latencies), 2),
        "unsubscribe_sends_after_post": len(late),
        # CPU per delivered message on each side (the sink's covers both campaigns).
        "messaging_sender_cpu_us_per_msg": round(1e6 * sender_cpu_s / max(1, first["sent"])),
        "messaging_sink_cpu_us_per_msg": round(1e6 * sink.cpu_s / max(1, len(receipts))),
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="tapwire-bench-messaging-"))
    try:
        # uvloop, as `tapwire up` and `tapwire serve` run the service.
        figures = uvloop.run(run(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()

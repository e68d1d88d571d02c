"""Console benchmark: every page's server time and the segment builder's live count, on the 1M-event dataset.

``python -m tests.bench.console [--events N] [--users U]`` (defaults: 1M events over 100,000 users). The dataset
comes from ``tapwire generate`` straight into the warehouse, built once into ``~/.cache/tapwire/console-bench/``
(keyed by size, seed, schema and generator) and copied for each run. A real ``tapwire up`` serves it; an admin
session signs in through the API and each page is fetched ``BENCH_CONSOLE_RUNS`` times over loopback, one at a
time, timed from the request to the last byte of the answer — the page's route, its API calls through the app
and the warehouse queries behind them, and the rendering. The floor measured beside it is a static asset.

Last output line: ``{"console_page_p95_ms": worst page's p95, "console_live_count_p95_ms": ...,
"console_static_p95_ms": ...}``; the per-page figures go to stderr.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tapwire_core.warehouse.migrations import checksum, migrations
from tapwire_services import generate
from tests.integration.processes import TapwireProcess

ACCOUNT = "TAP-CBENCH"
PASSCODE = "console-bench-passcode-0123456789"
WRITE_KEY = "console-bench-write-key-0123456789"
SEED = 7
RUNS = int(os.environ.get("BENCH_CONSOLE_RUNS", "20"))
CACHE = Path(os.environ.get("TAPWIRE_CACHE", Path.home() / ".cache" / "tapwire")) / "console-bench"
# The generated events fall in January 2026: pages that take a window are pointed at it.
PAGES = {
    "overview": "/console?to=20260130",
    "events": "/console/events?to=20260130",
    "profiles (search)": "/console/profiles?q=user-0000042",
    "profile": "/console/profiles/i:user-0000042?identity=user-0000042",
    "segments": "/console/segments",
    "segment builder": "/console/segments/new",
    "trends": "/console/segments?analyze=trends&event=Charged&from=2026-01-01&to=2026-01-31",
    "funnel": "/console/segments?analyze=funnel&steps=Product+Viewed,Added+To+Cart,Charged&hours=24&from=2026-01-01&to=2026-01-31",
    "retention": "/console/segments?analyze=retention&first_event=App+Opened&return_event=Charged&from=2026-01-01&to=2026-01-14",
    "campaigns": "/console/campaigns",
    "new campaign": "/console/campaigns/new",
    "privacy": "/console/privacy",
    "settings": "/console/settings",
    "my profile": "/console/me",
}


def log(message: str) -> None:
    print(f"[bench:console] {message}", file=sys.stderr, flush=True)


def dataset(events: int, users: int) -> Path:
    """A data directory holding the dataset in chDB (built on first use, then reused)."""
    fingerprint = hashlib.sha256("".join(checksum(m) for m in migrations()).encode())
    fingerprint.update(Path(generate.__file__).read_bytes())
    built = CACHE / f"e{events}-u{users}-s{SEED}-{fingerprint.hexdigest()[:10]}"
    if (built / "done").exists():
        log(f"reusing the dataset in {built}")
        return built
    shutil.rmtree(built, ignore_errors=True)
    built.mkdir(parents=True)
    log(f"building {events} events over {users} users into {built} (once)")
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tapwire_services.cli",
            "generate",
            "--users",
            str(users),
            "--events",
            str(events),
            "--seed",
            str(SEED),
            "--warehouse",
            "--account",
            ACCOUNT,
        ],
        env=os.environ | {"TAPWIRE_DATA_DIR": str(built)},
        check=True,
        timeout=3600,
    )
    (built / "done").write_text(f"{time.perf_counter() - started:.0f} s\n")
    return built


def session_cookie(data: Path, token: str) -> str:
    """The cookie the console sets at sign-in: the token and its HMAC under the console's secret."""
    secret = (data / "console.secret").read_bytes().strip()
    mac = hmac.new(secret, f"session\x1f{token}".encode(), hashlib.sha256).digest()
    return f"{token}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def p95(samples: list[float]) -> float:
    return (
        round(statistics.quantiles(samples, n=20, method="inclusive")[18], 1)
        if len(samples) > 1
        else samples[0]
    )


def timed_get(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    source = dataset(args.events, args.users)
    work = Path(tempfile.mkdtemp(prefix="tapwire-console-bench-"))
    data = work / "data"
    # cp -a keeps chDB's own links as they are, so the copy opens as the original does.
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(data)], check=True)
    suite = TapwireProcess(
        ["up"],
        env={"TAPWIRE_DATA_DIR": str(data), "TAPWIRE_ACCOUNTS": f"{ACCOUNT}:{PASSCODE}:{WRITE_KEY}"},
        log_path=work / "tapwire.log",
    ).start()
    try:
        suite.wait_ready(timeout_s=300)
        figures = measure(suite, data)
    finally:
        suite.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(orjson.dumps(figures).decode(), flush=True)


def measure(suite: TapwireProcess, data: Path) -> dict[str, Any]:
    opened = httpx.post(
        suite.url + "/account/v1/sessions", json={"account_id": ACCOUNT, "passcode": PASSCODE}
    )
    opened.raise_for_status()
    token = opened.json()["token"]
    headers = {"Origin": suite.url, "Sec-Fetch-Site": "same-origin"}
    with httpx.Client(
        base_url=suite.url, cookies={"tw_session": session_cookie(data, token)}, headers=headers, timeout=120
    ) as client:
        for path in PAGES.values():  # warm: first queries load parts and compile statements
            timed_get(client, path)
        per_page: dict[str, float] = {}
        for name, path in PAGES.items():
            samples = [timed_get(client, path) for _ in range(RUNS)]
            per_page[name] = p95(samples)
            log(f"{name:18} p50 {statistics.median(samples):7.1f} ms   p95 {per_page[name]:7.1f} ms")
        static = [timed_get(client, "/console/static/console.css") for _ in range(RUNS * 3)]
        csrf = hmac.new(
            (data / "console.secret").read_bytes().strip(), f"csrf\x1f{token}".encode(), hashlib.sha256
        ).digest()
        csrf_token = base64.urlsafe_b64encode(csrf).decode().rstrip("=")
        counts = []
        for run in range(RUNS):
            # A new question each time (the plan and the window change), as a person editing the builder asks.
            form = {
                "csrf_token": csrf_token,
                "n-r-kind": "group",
                "n-r-match": "all",
                "n-r.0-kind": "profile",
                "n-r.0-prop": "Plan",
                "n-r.0-prop_op": "equals",
                "n-r.0-prop_value": ("free", "plus", "pro")[run % 3],
                "n-r.1-kind": "first_seen",
                "n-r.1-from": "2026-01-01",
                "n-r.1-to": f"2026-01-{1 + run % 28:02d}",
                "n-r.2-kind": "funnel",
                "n-r.2-steps": "Product Viewed, Added To Cart",
                "n-r.2-hours": str(1 + run),
                "n-r.2-from": "2026-01-01",
                "n-r.2-to": "2026-01-31",
            }
            started = time.perf_counter()
            answer = client.post("/console/segments/count", data=form)
            counts.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200 and "audience-size" in answer.text, answer.text[:500]
        log(f"{'live count':18} p50 {statistics.median(counts):7.1f} ms   p95 {p95(counts):7.1f} ms")
    return {
        "console_page_p95_ms": max(per_page.values()),
        "console_live_count_p95_ms": p95(counts),
        "console_static_p95_ms": p95(static),
    }


if __name__ == "__main__":
    main()

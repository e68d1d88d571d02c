"""An SMTP sink in its own process, for benchmarks: ``python -m tests.messaging.sink_process PORT OUT``.

Accepts every message and, on SIGTERM, writes one line per receipt to OUT: ``<epoch seconds>\\t<To>\\t<Message-ID>``.
It only reads the headers it needs, so the sink is not the bottleneck being measured.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import uvloop
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class CountingSink:
    def __init__(self) -> None:
        self.receipts: list[tuple[float, str, str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        head = (envelope.original_content or b"").split(b"\r\n\r\n", 1)[0]
        message_id = ""
        for line in head.split(b"\r\n"):
            if line[:11].lower() == b"message-id:":
                message_id = line[11:].strip().decode()
                break
        self.receipts.append((time.time(), ",".join(envelope.rcpt_tos), message_id))
        return "250 2.0.0 queued"


def main() -> None:
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    sink = CountingSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port, loop=uvloop.new_event_loop())
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    loop.run_until_complete(stop.wait())
    controller.stop()
    out.write_text("".join(f"{ts:.6f}\t{to}\t{mid}\n" for ts, to, mid in sink.receipts))


if __name__ == "__main__":
    main()

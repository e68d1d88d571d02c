"""An SMTP sink in its own process, for benchmarks: ``python -m tests.messaging.sink_process PORT OUT [--no-pipelining] [--no-chunking]``.

Runs :mod:`tests.messaging.pipelining_sink` (which offers PIPELINING and CHUNKING unless told not to) on uvloop, accepts every
message and, on SIGTERM, writes one line per receipt to OUT: ``<epoch seconds>\\t<To>\\t<Message-ID>``. It reads
only the header it needs, so that the sink costs the machine as little as a production MTA's queue would.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import uvloop

from tests.messaging.pipelining_sink import serve


class Receipts:
    def __init__(self) -> None:
        self.rows: list[tuple[float, str, str]] = []

    def __call__(self, recipients: list[str], content: bytes) -> None:
        head_end = content.find(b"\r\n\r\n")
        head = content[: head_end if head_end != -1 else len(content)]
        at = head.lower().find(b"\r\nmessage-id:")
        message_id = ""
        if at != -1:
            end = head.find(b"\r\n", at + 2)
            message_id = head[at + 13 : end if end != -1 else len(head)].strip().decode()
        self.rows.append((time.time(), ",".join(recipients), message_id))


async def run(port: int, *, pipelining: bool, chunking: bool) -> Receipts:
    receipts = Receipts()
    server = await serve(receipts, port=port, pipelining=pipelining, chunking=chunking)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    return receipts


def main() -> None:
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    flags = sys.argv[3:]
    receipts = uvloop.run(
        run(port, pipelining="--no-pipelining" not in flags, chunking="--no-chunking" not in flags)
    )
    out.write_text("".join(f"{ts:.6f}\t{to}\t{mid}\n" for ts, to, mid in receipts.rows))


if __name__ == "__main__":
    main()

"""Running ``tapwire`` as real subprocesses: the CLI, settings from the environment, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TapwireProcess:
    """One ``tapwire`` command in a subprocess with its own port, log file and environment."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.args = args
        self.port = port or free_port()
        self.env = os.environ | env | {"TAPWIRE_HOST": "127.0.0.1", "TAPWIRE_PORT": str(self.port)}
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def successor(self) -> TapwireProcess:
        """The same command, environment, log file and port in a new process, started (the restart after a
        kill); not yet ready."""
        return TapwireProcess(self.args, self.env, self.log_path, port=self.port).start()

    def start(self) -> TapwireProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tapwire_services.cli", *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout_s: float = 240.0) -> None:
        """Until ``/readyz`` answers 200; fails at once if the process exits.

        ``timeout_s`` only catches a process that never gets there (below pytest's per-test timeout, so the
        failure comes with the process's log). It is no start-up budget: start-up time is the benchmarks'
        business, and on a loaded machine (the suite beside other runs on two cores) importing the service
        alone took over a minute, which made a 60 s wait fail tests that had nothing wrong.
        """
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.args} exited with {self.proc.returncode}:\n{self.logs()[-4000:]}"
                )
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise AssertionError(f"{self.args} not ready after {timeout_s}s ({last}):\n{self.logs()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait for a clean exit."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"{self.args} ignored SIGTERM:\n{self.logs()[-4000:]}") from None
        self._close_log()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

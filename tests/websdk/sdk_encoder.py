"""The Web SDK's own ``compressToBase64``, run under Node from the installed ``clevertap-web-sdk`` package."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import TracebackType

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
SDK = CLIENTS / "node_modules" / "clevertap-web-sdk" / "clevertap.js"


class SdkEncoder:
    """One Node process encoding strings line by line (a process per string would cost 50 ms each)."""

    def __init__(self) -> None:
        assert SDK.is_file(), "clevertap-web-sdk missing: run `make test` (it runs `npm ci` in tests/clients)"
        self._process = subprocess.Popen(
            ["node", "websdk_encoder.mjs"],
            cwd=CLIENTS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def encode(self, text: str) -> str:
        """``compressToBase64(text)``; ``text`` may hold any code points (surrogates travel as JSON escapes)."""
        assert self._process.stdin is not None and self._process.stdout is not None
        # json.dumps escapes every non-ASCII code unit, lone surrogates included.
        self._process.stdin.write(json.dumps(text) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        assert line.endswith("\n"), "the Node encoder stopped"
        return line[:-1]

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=10)

    def __enter__(self) -> SdkEncoder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

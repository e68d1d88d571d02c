"""Export archives: one JSON file per store plus a manifest, zipped; and the signed, expiring download link.

An archive is written to a temporary name, one batch of rows at a time, and renamed into place, so a crash
never leaves a half archive under the final name and a whole account's export never sits in memory. Links carry
the request id, an expiry (epoch seconds) and an HMAC-SHA256 over both under the deployment's link-signing key;
a changed id or expiry, or a late click, is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import orjson

from tapwire_privacy.stores.files import archive_path, partial_archive_path


class ArchiveWriter:
    """Writes ``<request_id>.zip`` one batch of rows at a time: ``stores/<store>.json`` (a JSON array of the store's
    rows) for each store in turn, then ``manifest.json`` with every store's row count. Memory holds the batch being
    written, never a whole store. The archive is written under a temporary name and renamed into place by
    ``finish``; ``discard`` removes a half-written one. Every method blocks (compression): run it in a thread.
    """

    def __init__(self, directory: Path, request_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._final = archive_path(directory, request_id)
        self._partial = partial_archive_path(directory, request_id)
        self._zip = zipfile.ZipFile(self._partial, "w", compression=zipfile.ZIP_DEFLATED)
        self._entry: IO[bytes] | None = None
        self._store = ""
        self._rows = 0
        self.counts: dict[str, int] = {}

    def begin_store(self, name: str) -> None:
        """Start the store's file; the rows written next belong to it."""
        self._end_store()
        # force_zip64: the size of a whole account's file is not known in advance and may pass 4 GiB.
        self._entry = self._zip.open(f"stores/{name}.json", "w", force_zip64=True)
        self._store, self._rows = name, 0

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` to the current store's array, laid out as ``orjson.OPT_INDENT_2`` lays out a list."""
        if self._entry is None:
            raise RuntimeError("begin_store first")
        if not rows:
            return
        # One serialisation of the whole batch, laid out as a list: its items are the text between the
        # opening "[\n" and the closing "\n]", written without copying it out.
        text = orjson.dumps(rows, option=orjson.OPT_INDENT_2)
        self._entry.write(b"[\n" if self._rows == 0 else b",\n")
        self._entry.write(memoryview(text)[2:-2])
        self._rows += len(rows)

    def _end_store(self) -> None:
        if self._entry is None:
            return
        self._entry.write(b"\n]" if self._rows else b"[]")
        self._entry.close()
        self.counts[self._store] = self._rows
        self._entry = None

    def finish(self, manifest: dict[str, Any]) -> Path:
        """Write ``manifest.json`` (``manifest`` plus each store's file and rows) and put the archive in place."""
        self._end_store()
        full_manifest = {
            **manifest,
            "stores": {
                name: {"file": f"stores/{name}.json", "rows": rows} for name, rows in self.counts.items()
            },
        }
        self._zip.writestr("manifest.json", orjson.dumps(full_manifest, option=orjson.OPT_INDENT_2))
        self._zip.close()
        os.replace(self._partial, self._final)
        return self._final

    def discard(self) -> None:
        """Drop a half-written archive (after a failure); nothing is left under either name."""
        with contextlib.suppress(Exception):
            if self._entry is not None:
                self._entry.close()
            self._zip.close()
        self._partial.unlink(missing_ok=True)


def _signature(key: bytes, request_id: str, expires: int) -> str:
    return hmac.new(key, f"export:{request_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_export_url(base_url: str, key: bytes, request_id: str, expires_at: dt.datetime) -> str:
    expires = int(expires_at.timestamp())
    query = urlencode({"expires": expires, "signature": _signature(key, request_id, expires)})
    return f"{base_url.rstrip('/')}/privacy/v1/requests/{request_id}/export?{query}"


class LinkRefused(Exception):
    """A download link that is forged, altered (``status`` 403) or expired (410)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check_link(key: bytes, request_id: str, *, expires: str, signature: str, now: dt.datetime) -> None:
    """Raises LinkRefused unless ``signature`` signs (request_id, expires) and ``expires`` is in the future."""
    try:
        expires_at = int(expires)
    except ValueError:
        raise LinkRefused(403, "This download link is not valid") from None
    if not hmac.compare_digest(_signature(key, request_id, expires_at), signature):
        raise LinkRefused(403, "This download link is not valid")
    if now.timestamp() > expires_at:
        raise LinkRefused(410, "This download link has expired")

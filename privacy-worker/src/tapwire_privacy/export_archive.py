"""Export archives: one JSON file per store plus a manifest, zipped; and the signed, expiring download link.

An archive is written to a temporary name and renamed into place, so a crash never leaves a half archive under
the final name. Links carry the request id, an expiry (epoch seconds) and an HMAC-SHA256 over both under the
deployment's link-signing key; a changed id or expiry, or a late click, is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from tapwire_privacy.stores.files import archive_path


def write_archive(
    directory: Path,
    request_id: str,
    *,
    stores: Mapping[str, list[dict[str, Any]]],
    manifest: dict[str, Any],
) -> Path:
    """Write ``<request_id>.zip`` with ``manifest.json`` and ``stores/<store>.json``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    final = archive_path(directory, request_id)
    partial = final.with_suffix(".zip.partial")
    full_manifest = {
        **manifest,
        "stores": {name: {"file": f"stores/{name}.json", "rows": len(rows)} for name, rows in stores.items()},
    }
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", orjson.dumps(full_manifest, option=orjson.OPT_INDENT_2))
        for name, rows in stores.items():
            archive.writestr(f"stores/{name}.json", orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    os.replace(partial, final)
    return final


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

"""Web SDK requests built as clevertap.js (2.5.2) builds them, with the SDK's own encoder for ``d``.

``RequestManager.addSystemDataToObject`` adds ``id``, ``g``, ``s``, ``pg`` and ``af`` to every payload;
``saveAndFireRequest`` adds ``rn``, ``i`` and ``sn``; ``RequestDispatcher.fireRequest`` adds ``gc``, ``tries``,
``origin``, ``useIP`` and ``r``; ``addToURL`` percent-encodes each value (``encodeURIComponent``).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import orjson

from tests.websdk.sdk_encoder import SdkEncoder


def sdk_url(
    encoder: SdkEncoder,
    kind: str,
    payload: dict[str, Any],
    *,
    account_id: str,
    device_id: str | None = None,
    session_id: int | None = None,
    rn: int = 1,
    extra: dict[str, str] | None = None,
    origin: str = "https://shop.example",
) -> str:
    data = dict(payload)
    data["id"] = account_id
    if device_id is not None:
        data["g"] = device_id
    if session_id is not None:
        data["s"] = session_id
    data.setdefault("pg", 1)
    data["af"] = {"lib": "web-sdk-v2.5.2", "protocol": "https"}
    d = encoder.encode(orjson.dumps(data).decode())
    params = {"type": kind, "d": d, "rn": str(rn), "i": str(int(time.time())), "sn": "0"}
    if device_id is not None:
        params["gc"] = device_id
    params |= {"tries": "1", "origin": origin, "useIP": "false", "r": str(time.time_ns() // 1_000_000)}
    params |= extra or {}
    return "/a?t=96" + "".join(f"&{k}={quote(v, safe='')}" for k, v in params.items())


def event(name: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "event", "evtName": name}
    if data is not None:
        body["evtData"] = data
    return body


def profile(fields: dict[str, Any], *, login: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "profile", "profile": {**fields, "tz": "GMT+0100"}}
    if login:
        body["isOUL"] = True
    return body

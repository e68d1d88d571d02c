"""Mobile SDK requests built as the SDKs' sources build them (cited per piece); no Android or iOS runtime here.

- Android (CleverTap/clevertap-android-sdk, clevertap-core): ``network/api/CtApi.kt`` — ``defaultHeaders``
  (``X-CleverTap-Account-ID``, ``X-CleverTap-Token``), ``defaultQueryParams`` (``os``, ``t``, ``z``),
  ``sendQueue`` (``/a1`` plus ``ts``) and ``performHandshakeForDomain`` (``/hello``);
  ``network/api/SendQueueRequestBody.kt`` — ``toString`` (header first, then the queue);
  ``network/QueueHeaderBuilder.kt`` — ``buildHeader`` (``g``, ``type: meta``, ``af``, ``id``, ``tk``, ``l_ts``,
  ``f_ts``, ``ct_pi``, ``ddnd``, ``rtl``, ``frs``, …); ``events/EventQueueManager.java`` — ``processEvent``
  (``n``, ``s``, ``pg``, ``type``, ``ep``, ``f``, ``lsl``); ``pushnotification/PushProviders.java`` —
  ``pushDeviceTokenEvent`` (``data: {action, id, type}``); ``CleverTapAPI.java`` — ``setOptOut``
  (a profile push of ``ct_optout`` and ``ct_allow_sys_events_and_communication``).
- iOS (CleverTap/clevertap-ios-sdk): ``CleverTapSDK/CTRequestFactory.m`` — ``helloRequestWithConfig`` (``GET``)
  and ``eventRequestWithConfig`` (``POST``); ``CleverTapSDK/CTRequest.m`` — ``createURLRequestWithAdditionalHeaders``
  (account id and token headers, JSON body); ``CleverTapSDK/CleverTap.m`` —
  ``pushDeviceToken:forRegisterAction:`` (``data: {action, id, type: apns}``).
"""

from __future__ import annotations

import time
from typing import Any

ANDROID_SDK_VERSION = "70200"


def headers(account_id: str, token: str) -> dict[str, str]:
    """``CtApi.defaultHeaders`` / ``CTRequest.createURLRequestWithAdditionalHeaders``."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-CleverTap-Account-ID": account_id,
        "X-CleverTap-Token": token,
    }


def query(account_id: str, *, os: str = "Android") -> dict[str, str]:
    """``CtApi.defaultQueryParams`` plus ``appendTsQueryParam``."""
    return {"os": os, "t": ANDROID_SDK_VERSION, "z": account_id, "ts": str(int(time.time()))}


def meta_header(account_id: str, token: str, device_id: str, *, os_name: str = "Android") -> dict[str, Any]:
    """``QueueHeaderBuilder.buildHeader``, with the app fields ``DeviceInfo.appLaunchedFields`` reports."""
    now = int(time.time())
    return {
        "g": device_id,
        "type": "meta",
        "af": {
            "Build": "42",
            "Version": "3.1.0",
            "OS Version": "14" if os_name == "Android" else "17.2",
            "SDK Version": int(ANDROID_SDK_VERSION),
            "Make": "Google" if os_name == "Android" else "Apple",
            "Model": "Pixel 8" if os_name == "Android" else "iPhone15,2",
            "Carrier": "",
            "useIP": False,
            "OS": os_name,
            "wifi": True,
        },
        "id": account_id,
        "tk": token,
        "l_ts": now - 60,
        "f_ts": now - 3600,
        "ct_pi": "Identity,Email",
        "ddnd": False,
        "rtl": [],
        "frs": True,
        "wzrk_fetch": False,
    }


def item(kind: str, body: dict[str, Any], *, session: int) -> dict[str, Any]:
    """``EventQueueManager.processEvent``: the fields every queued item gets."""
    return {
        **body,
        "n": "MainActivity",
        "s": session,
        "pg": 1,
        "type": kind,
        "ep": int(time.time()),
        "f": True,
        "lsl": 0,
    }


def event(name: str, data: dict[str, Any], *, session: int) -> dict[str, Any]:
    return item("event", {"evtName": name, "evtData": data}, session=session)


def profile(fields: dict[str, Any], *, session: int) -> dict[str, Any]:
    return item("profile", {"profile": fields}, session=session)


def push_token(token: str, token_type: str, *, session: int, register: bool = True) -> dict[str, Any]:
    """``PushProviders.pushDeviceTokenEvent`` (Android, ``fcm``) / ``pushDeviceToken:forRegisterAction:`` (iOS,
    ``apns``)."""
    data = {"action": "register" if register else "unregister", "id": token, "type": token_type}
    return item("data", {"data": data}, session=session)


def body(header: dict[str, Any], *items: dict[str, Any]) -> list[dict[str, Any]]:
    """``SendQueueRequestBody.toString``: the header, then the queue."""
    return [header, *items]

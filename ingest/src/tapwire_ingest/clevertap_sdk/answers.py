"""What the Web SDK reads back: a script calling ``window.$WZRK_WR.s(…)`` (JSONP) or ``{"meta": {…}}`` (fetch).

``enableWebPush(enabled, key)`` (``wpe`` in the JSON) tells it the account takes web push subscriptions, and
``tr({webPushConfig: {}})`` (``tr``) that no soft prompt is configured, so the SDK goes on with a
``notifications.push`` the site made before the answer came (``processWebPushConfig``).
``s(g, sid, rf, rn, optOut)`` (``CleverTapAPI.s`` in clevertap.js) stores the device id ``g`` when the browser
has none, when ``rf`` (resume, answering a login) is true or when ``optOut`` is a boolean; takes ``sid`` as the
session; drops the request numbered ``rn`` from its backup queue; and, on a new device id, fires every request
it held back meanwhile. The fetch variant (``RequestDispatcher.handleFetchResponse``) calls the same function
with ``meta``'s fields. In-app and inbox messages for the user go to ``tr`` as well (``message_shapes``).

Nothing from the request reaches a script unescaped: device ids are checked against a strict pattern before
they get here, numbers are integers, and free text (why a record was refused, a message's texts) goes through a
JSON encoder whose output is also safe inside an HTML ``<script>`` element.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from tapwire_ingest.clevertap_sdk.web_request import DEVICE_ID, OPT_OUT_SUFFIX

_WEB_PUSH_CONFIG: Final[dict[str, Any]] = {"webPushConfig": {}}
# Both answers: never cached (each names a request number and a session), never sniffed as another type.
SCRIPT_HEADERS: Final = ((b"content-type", b"application/javascript"),)
META_HEADERS: Final = ((b"content-type", b"application/json"),)
ANSWER_HEADERS: Final = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))
# s(deviceId, sessionId, resume, requestNumber[, optOut]): the callback the SDK defines on window.$WZRK_WR.
_S_CALL: Final = 'window.$WZRK_WR&&window.$WZRK_WR.s("%s",%d,%s,%d%s);'
_OPT_OUT_ARGUMENT: Final[dict[bool | None, str]] = {None: "", True: ",true", False: ",false"}
# Characters a JSON encoder leaves as they are but that end or change a <script> element or a JS line.
_SCRIPT_ESCAPES: Final = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


@dataclass(slots=True)  # not frozen: built once per request, where frozen fields cost a setattr call each
class SdkAnswer:
    """The device id and session the SDK is to use, and what became of the request's records."""

    device_id: str
    session_id: int
    request_number: int
    resume: bool = False
    opt_out: bool | None = None
    refused: Sequence[str] = field(default_factory=tuple)
    web_push_key: str | None = None
    """Tell the SDK web push is on, with this VAPID public key (``enableWebPush``); only on page loads."""
    campaigns: dict[str, Any] | None = None
    """In-app and inbox messages (and the web inbox's setting) for ``tr``, shaped by ``message_shapes``."""

    def device_cookie(self) -> str:
        """The id as the SDK stores it: an opted-out device's id ends in ``:OO``, which makes the SDK drop every
        later request of that browser before sending it."""
        if not DEVICE_ID.fullmatch(self.device_id):  # pragma: no cover - ids are checked where they enter
            raise ValueError("device id outside the SDK's alphabet")
        return self.device_id + OPT_OUT_SUFFIX if self.opt_out else self.device_id


def script(answer: SdkAnswer) -> bytes:
    """The JSONP answer (``SCRIPT_HEADERS``): JavaScript the SDK's script tag runs.

    The common answer is one template filled with numbers, booleans and the device id, which ``device_cookie``
    holds to the SDK's own alphabet (no quote, backslash or angle bracket), so it needs no escaping; anything
    else a request can influence (refusal reasons) goes through ``_js_string``.
    """
    body = _S_CALL % (
        answer.device_cookie(),
        answer.session_id,
        "true" if answer.resume else "false",
        answer.request_number,
        _OPT_OUT_ARGUMENT[answer.opt_out],
    )
    if answer.web_push_key is None and not answer.refused and answer.campaigns is None:
        return body.encode()
    tr = answer.campaigns
    if answer.web_push_key is not None:
        # After s(): a subscription they trigger is sent with the device id just given.
        body += f"\nwindow.$WZRK_WR&&window.$WZRK_WR.enableWebPush(true,{_js_string(answer.web_push_key)});"
        tr = {**_WEB_PUSH_CONFIG, **(tr or {})}
    if tr is not None:
        # After s() too: the web inbox files its entries under the device id.
        body += f"\nwindow.$WZRK_WR&&window.$WZRK_WR.tr({_js_json(tr)});"
    for reason in answer.refused:
        body += f"\nwindow.console&&console.warn({_js_string('tapwire refused a record: ' + reason)});"
    return body.encode()


def meta(answer: SdkAnswer) -> bytes:
    """The fetch variant's JSON answer (``META_HEADERS``)."""
    fields: dict[str, object] = {
        "g": answer.device_cookie(),
        "sid": answer.session_id,
        "rf": answer.resume,
        "rn": answer.request_number,
    }
    if answer.opt_out is not None:
        fields["optOut"] = answer.opt_out
    body: dict[str, object] = {"meta": fields}
    tr: dict[str, Any] = {}
    if answer.web_push_key is not None:
        body["wpe"] = {"enabled": True, "key": answer.web_push_key}
        tr.update(_WEB_PUSH_CONFIG)
    if answer.campaigns is not None:
        tr.update(answer.campaigns)
    if tr:
        body["tr"] = tr
    if answer.refused:
        body["refused"] = list(answer.refused)
    return orjson.dumps(body)


def _js_string(text: str) -> str:
    return orjson.dumps(text).decode().translate(_SCRIPT_ESCAPES)


def _js_json(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode().translate(_SCRIPT_ESCAPES)

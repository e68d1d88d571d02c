"""In-app and inbox messages as the SDKs' answers carry them: hostile texts and URLs from a template's data
cannot become markup or script in the Web SDK (which writes the popup's texts into an iframe as HTML and the
whole answer into a script), and the inbox selector and URLs are held to what the SDKs can use safely."""

from __future__ import annotations

import json

from tapwire_core.control.sdk_messages import PendingMessage
from tapwire_ingest.clevertap_sdk import answers
from tapwire_ingest.clevertap_sdk.message_shapes import mobile_campaigns, web_campaigns, web_inbox_setting
from tapwire_messaging.delivery.messages import sdk_content

HOSTILE = "</script><script>alert(1)</script>\u2028\"'<img src=x onerror=alert(2)>&amp;"


def _message(channel: str, content: dict[str, str], *, message_id: int = 7) -> PendingMessage:
    return PendingMessage(
        id=message_id,
        campaign_id=42,
        variant="A",
        channel=channel,
        user_key="i:ann",
        content=content,
        created_ms=1_800_000_000_000,
        expires_ms=1_800_000_600_000,
    )


def test_rendered_content_keeps_texts_and_only_plain_http_urls() -> None:
    content = sdk_content(
        {
            "title": "  Hi  ",
            "body": "x" * 5000,
            "url": "javascript:alert(1)",
            "image": "https://cdn.example/a.png' onerror='alert(1)",
            "icon": "https://cdn.example/i.png",
            "button": "",
        }
    )
    assert content == {"title": "Hi", "body": "x" * 2000, "icon": "https://cdn.example/i.png"}


def test_a_hostile_title_is_text_in_the_popup_and_never_script_in_the_answer() -> None:
    popup = _message(
        "inapp",
        {
            "title": HOSTILE,
            "body": HOSTILE,
            "click_link": "https://t.example/m/c/tok",
            "url": "https://shop.example/a b",
        },
    )
    entry = _message("inbox", {"title": HOSTILE, "body": "ok"}, message_id=8)
    tr = web_campaigns([popup, entry], web_inbox_setting({"web_inbox_selector": "bell"}), page_load=False)
    assert tr is not None
    (shown,) = tr["inapp_notifs"]
    assert "<" not in shown["msgContent"]["title"] and "<" not in shown["msgContent"]["description"]
    assert shown["wzrk_id"] == "42_7" and shown["display"]["efc"] == 1
    assert shown["display"]["onClick"] == "https://t.example/m/c/tok?r=https%3A%2F%2Fshop.example%2Fa%20b"
    # The inbox shows its texts with innerText: they stay as written.
    assert tr["inbox_notifs"][0]["msg"][0]["title"] == HOSTILE
    assert tr["webInboxSetting"]["inboxSelector"] == "bell"

    answer = answers.SdkAnswer(device_id="a" * 32, session_id=1, request_number=3, campaigns=tr)
    script = answers.script(answer).decode()
    call = script.split("\n")[1]
    assert call.startswith("window.$WZRK_WR&&window.$WZRK_WR.tr(") and call.endswith(");")
    argument = call.removeprefix("window.$WZRK_WR&&window.$WZRK_WR.tr(").removesuffix(");")
    assert not any(c in argument for c in "<>&\u2028\u2029"), "nothing that ends a script or a line of it"
    assert json.loads(argument) == tr
    assert json.loads(answers.meta(answer))["tr"] == tr


def test_web_push_and_messages_share_one_tr() -> None:
    tr = web_campaigns([_message("inbox", {"title": "t"})], None, page_load=False)
    answer = answers.SdkAnswer(
        device_id="b" * 32, session_id=1, request_number=1, web_push_key="K" * 20, campaigns=tr
    )
    lines = answers.script(answer).decode().split("\n")
    assert lines[1].startswith("window.$WZRK_WR&&window.$WZRK_WR.enableWebPush(true,")
    assert json.loads(lines[2].removeprefix("window.$WZRK_WR&&window.$WZRK_WR.tr(").removesuffix(");")) == {
        "webPushConfig": {},
        **(tr or {}),
    }
    assert json.loads(answers.meta(answer))["tr"] == {"webPushConfig": {}, **(tr or {})}


def test_no_messages_and_no_inbox_leave_the_answer_as_it_was() -> None:
    assert web_campaigns([], None, page_load=True) is None
    assert web_campaigns([], web_inbox_setting({"web_inbox_selector": "bell"}), page_load=False) is None
    plain = answers.SdkAnswer(device_id="c" * 32, session_id=5, request_number=2)
    assert answers.script(plain) == b'window.$WZRK_WR&&window.$WZRK_WR.s("' + b"c" * 32 + b'",5,false,2);'
    assert mobile_campaigns([]) == {}


def test_the_inbox_selector_is_an_element_id() -> None:
    for bad in ("", "1bell", "bell'){}", "a" * 65, 7, None, "#bell"):
        assert web_inbox_setting({"web_inbox_selector": bad}) is None
    setting = web_inbox_setting({"web_inbox_selector": "inbox-bell_2"})
    assert setting is not None and setting["categories"] == [] and setting["styles"]["cards"]

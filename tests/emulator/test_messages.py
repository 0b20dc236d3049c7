"""Sending kf messages (all 11 types), the reply window and budget, and typing."""

from __future__ import annotations

import pytest

SEND = "/cgi-bin/message/custom/send"
TYPING = "/cgi-bin/message/custom/typing"
OK = {"errcode": 0, "errmsg": "ok"}

VALID = {
    "text": ({"content": "您好，请问有什么可以帮您？"}, "您好，请问有什么可以帮您？"),
    "image": ({"media_id": "MEDIA_ID"}, "[image]"),
    "voice": ({"media_id": "MEDIA_ID"}, "[voice]"),
    "video": (
        {
            "media_id": "MEDIA_ID",
            "thumb_media_id": "THUMB",
            "title": "开箱视频",
            "description": "看看这个",
        },
        "[video]",
    ),
    "music": (
        {
            "title": "歌",
            "description": "d",
            "musicurl": "http://example.com/a.mp3",
            "hqmusicurl": "http://example.com/a-hq.mp3",
            "thumb_media_id": "THUMB",
        },
        "[music]",
    ),
    "news": (
        {
            "articles": [
                {
                    "title": "新品",
                    "description": "上新",
                    "url": "http://example.com",
                    "picurl": "http://example.com/p.jpg",
                }
            ]
        },
        "[news]",
    ),
    "mpnews": ({"media_id": "MEDIA_ID_NEWS"}, "[mpnews]"),
    "mpnewsarticle": ({"article_id": "ARTICLE_ID"}, "[mpnewsarticle]"),
    "msgmenu": (
        {
            "head_content": "您对本次服务是否满意？",
            "list": [{"id": "101", "content": "满意"}, {"id": "102", "content": "不满意"}],
            "tail_content": "欢迎再次光临",
        },
        "[msgmenu]",
    ),
    "wxcard": ({"card_id": "CARD_ID"}, "[wxcard]"),
    "miniprogrampage": (
        {
            "title": "订单详情",
            "appid": "wx0123456789abcdef",
            "pagepath": "pages/order?id=1",
            "thumb_media_id": "THUMB",
        },
        "[miniprogrampage]",
    ),
}


@pytest.fixture(autouse=True)
def media_ids(emulator) -> None:
    """The ids VALID names, held by the account (a made-up id answers 40007)."""
    for kind, media_id in (("image", "MEDIA_ID"), ("thumb", "THUMB"), ("news", "MEDIA_ID_NEWS"), ("article", "ARTICLE_ID")):
        emulator.media(kind, media_id)


def send(emulator, openid: str, msgtype: str, payload: object, **extra: object) -> dict:
    return emulator.post(SEND, {"touser": openid, "msgtype": msgtype, msgtype: payload, **extra})


def text(emulator, openid: str, content: str = "好的", **extra: object) -> dict:
    return send(emulator, openid, "text", {"content": content}, **extra)


def typing(emulator, openid: str, command: str = "Typing") -> dict:
    return emulator.post(TYPING, {"touser": openid, "command": command})


@pytest.mark.parametrize("msgtype", sorted(VALID))
def test_every_message_type_is_accepted_and_recorded(emulator, msgtype):
    payload, shown = VALID[msgtype]
    agent = emulator.bound_agent("anna")
    openid = emulator.customer()
    assert send(emulator, openid, msgtype, payload, customservice={"kf_account": agent}) == OK
    record = emulator.state.records(openid=openid)["records"][-1]
    assert (record["opercode"], record["worker"], record["text"]) == (2002, agent, shown)


def test_the_send_request_is_logged_as_sent(emulator):
    openid = emulator.customer()
    text(emulator, openid, '你好 <a href="http://example.com">链接</a>')
    call = emulator.calls[-1]
    assert call.path == SEND
    assert call.json == {
        "touser": openid,
        "msgtype": "text",
        "text": {"content": '你好 <a href="http://example.com">链接</a>'},
    }


def test_an_unknown_msgtype_answers_40008(emulator):
    openid = emulator.customer()
    assert send(emulator, openid, "sticker", {"media_id": "x"})["errcode"] == 40008
    assert emulator.post(SEND, {"touser": openid})["errcode"] == 40008


def test_a_missing_payload_object_answers_45162(emulator):
    openid = emulator.customer()
    assert emulator.post(SEND, {"touser": openid, "msgtype": "text"})["errcode"] == 45162
    assert (
        emulator.post(SEND, {"touser": openid, "msgtype": "text", "text": "hi"})["errcode"] == 45162
    )


@pytest.mark.parametrize(
    ("msgtype", "payload", "errcode"),
    [
        ("text", {}, 44004),
        ("text", {"content": ""}, 44004),
        ("text", {"content": 5}, 45162),
        ("image", {}, 40007),
        ("voice", {"media_id": ""}, 40007),
        ("video", {"title": "x"}, 40007),
        ("video", {"media_id": "m", "title": 3}, 45162),
        ("music", {"musicurl": "http://x", "hqmusicurl": "http://y"}, 40007),
        ("music", {"thumb_media_id": "t"}, 45162),
        ("news", {"articles": {"title": "not a list"}}, 45162),
        ("news", {"articles": []}, 44003),
        ("news", {"articles": [{"title": "a"}, {"title": "b"}]}, 45008),
        ("news", {"articles": ["a"]}, 45162),
        ("news", {"articles": [{"description": "no title or url"}]}, 44003),
        ("mpnews", {}, 40007),
        ("mpnewsarticle", {}, 45162),
        ("msgmenu", {"list": []}, 45162),
        ("msgmenu", {"list": [{"content": "no id"}]}, 45162),
        ("msgmenu", {"head_content": "h"}, 45162),
        ("wxcard", {}, 45162),
        ("miniprogrampage", {"pagepath": "p", "thumb_media_id": "t"}, 45162),
        ("miniprogrampage", {"appid": "wx1", "pagepath": "p"}, 40007),
    ],
)
def test_malformed_payloads_are_refused(emulator, msgtype, payload, errcode):
    openid = emulator.customer()
    assert send(emulator, openid, msgtype, payload)["errcode"] == errcode
    assert emulator.state.customer(openid=openid)["remaining"] == 5  # a refused send costs nothing


def test_sending_to_an_unknown_openid_answers_40003(emulator):
    assert text(emulator, "oNobodyKnowsMe")["errcode"] == 40003
    assert emulator.post(SEND, {"msgtype": "text", "text": {"content": "x"}})["errcode"] == 40003


def test_an_unknown_customservice_account_answers_65401(emulator):
    openid = emulator.customer()
    assert text(emulator, openid, customservice={"kf_account": "ghost@test_oa"})["errcode"] == 65401


def test_without_customservice_the_record_names_the_serving_agent(emulator):
    anna = emulator.bound_agent("anna")
    openid = emulator.customer()
    emulator.state.agent_accept(kf_account=anna)
    text(emulator, openid)
    assert emulator.state.records(openid=openid)["records"][-1]["worker"] == anna


def test_without_customservice_or_session_the_record_has_no_worker(emulator):
    openid = emulator.customer()
    text(emulator, openid)
    assert emulator.state.records(openid=openid)["records"][-1]["worker"] == ""


# ------------------------------------------------------------------ reply window and budget


def test_a_customer_message_allows_five_sends_then_45047(emulator):
    openid = emulator.customer()
    for _ in range(5):
        assert text(emulator, openid) == OK
    assert text(emulator, openid)["errcode"] == 45047


def test_the_window_closes_48_hours_after_the_customer_wrote(emulator):
    openid = emulator.customer()
    emulator.state.advance(48 * 3600 - 5)
    assert text(emulator, openid) == OK
    emulator.state.advance(10)
    assert text(emulator, openid)["errcode"] == 45015


def test_a_new_customer_message_restores_the_budget_to_five_not_more(emulator):
    openid = emulator.customer()
    for _ in range(3):
        text(emulator, openid)
    emulator.customer(openid, "还有一个问题")
    assert emulator.state.customer(openid=openid)["remaining"] == 5
    for _ in range(5):
        assert text(emulator, openid) == OK
    assert text(emulator, openid)["errcode"] == 45047


def test_a_customer_who_never_interacted_gets_45015(emulator):
    openid = emulator.state.add_customer()["openid"]
    assert text(emulator, openid)["errcode"] == 45015


def test_a_follow_grants_three_sends_within_60_seconds(emulator):
    openid = emulator.control("customer_event", openid="oFollower", event="follow")["openid"]
    for _ in range(3):
        assert text(emulator, openid) == OK
    assert text(emulator, openid)["errcode"] == 45047
    emulator.state.customer_event(openid=openid, event="follow")
    emulator.state.advance(61)
    assert text(emulator, openid)["errcode"] == 45015


@pytest.mark.parametrize("event", ["menu_click", "scan"])
def test_menu_clicks_and_scans_grant_three_sends_too(emulator, event):
    emulator.state.customer_event(openid="oClicker", event=event, event_key="K1")
    for _ in range(3):
        assert text(emulator, "oClicker") == OK
    assert text(emulator, "oClicker")["errcode"] == 45047


def test_a_click_after_the_message_budget_is_used_grants_three_sends_for_one_minute_only(
    emulator,
):
    # The probe, over HTTP: 5 sends, a click, an hour, a 6th send.
    openid = emulator.customer()
    for _ in range(5):
        assert text(emulator, openid) == OK
    emulator.control("customer_event", openid=openid, event="menu_click")
    emulator.control("advance", seconds=3600)
    assert text(emulator, openid)["errcode"] == 45047


def test_the_sends_an_event_grants_expire_after_a_minute_even_inside_a_message_window(
    emulator,
):
    openid = emulator.customer()
    for _ in range(5):
        text(emulator, openid)
    emulator.control("customer_event", openid=openid, event="scan")
    for _ in range(3):
        assert text(emulator, openid) == OK
    assert text(emulator, openid)["errcode"] == 45047
    emulator.control("customer_event", openid=openid, event="follow")
    emulator.control("advance", seconds=61)
    assert text(emulator, openid)["errcode"] == 45047


def test_an_event_does_not_touch_the_message_windows_48_hours_or_its_budget(emulator):
    openid = emulator.customer()
    written = emulator.control("customer", openid=openid)["message_grant"]
    text(emulator, openid)
    answer = emulator.control("customer_event", openid=openid, event="menu_click")
    assert answer["message_grant"] == {"expires_at": written["expires_at"], "remaining": 4}
    assert answer["event_grant"]["remaining"] == 3
    assert answer["remaining"] == 7
    emulator.control("advance", seconds=61)
    for _ in range(4):
        assert text(emulator, openid) == OK
    assert text(emulator, openid)["errcode"] == 45047
    emulator.control("advance", seconds=48 * 3600)
    assert text(emulator, openid)["errcode"] == 45015


def test_a_send_spends_the_event_grant_first_because_it_lapses_first(emulator):
    openid = emulator.customer()
    emulator.control("customer_event", openid=openid, event="menu_click")
    assert text(emulator, openid) == OK
    view = emulator.control("customer", openid=openid)
    assert view["event_grant"]["remaining"] == 2
    assert view["message_grant"]["remaining"] == 5


def test_a_message_after_an_event_keeps_the_event_grant_and_opens_48_hours(emulator):
    openid = emulator.control("customer_event", openid="oFollower", event="follow")["openid"]
    text(emulator, openid)
    answer = emulator.control("customer_writes", openid=openid, text="你好", queue=False)
    assert answer["message_grant"]["remaining"] == 5
    assert answer["event_grant"]["remaining"] == 2
    assert answer["window_expires_at"] == answer["message_grant"]["expires_at"]


def test_an_unfollow_closes_the_window(emulator):
    openid = emulator.customer()
    emulator.state.customer_event(openid=openid, event="unfollow")
    assert text(emulator, openid)["errcode"] == 45015


# ------------------------------------------------------------------ typing


def test_typing_needs_a_valid_command(emulator):
    openid = emulator.customer()
    assert typing(emulator, openid, "typing")["errcode"] == 45072
    assert emulator.post(TYPING, {"touser": openid})["errcode"] == 45072


def test_typing_to_an_unknown_openid_answers_40003(emulator):
    assert typing(emulator, "oNobodyKnowsMe")["errcode"] == 40003


def test_typing_lasts_15_seconds_and_cannot_be_repeated_meanwhile(emulator):
    openid = emulator.customer()
    assert typing(emulator, openid) == OK
    assert typing(emulator, openid)["errcode"] == 45081
    emulator.state.advance(16)
    assert typing(emulator, openid) == OK


def test_typing_needs_an_interaction_in_the_last_30_seconds(emulator):
    openid = emulator.customer()
    emulator.state.advance(31)
    assert typing(emulator, openid)["errcode"] == 45080
    emulator.customer(openid, "在吗")
    assert typing(emulator, openid) == OK


def test_typing_outside_the_window_answers_45015(emulator):
    openid = emulator.customer()
    emulator.state.advance(49 * 3600)
    assert typing(emulator, openid)["errcode"] == 45015


def test_a_sent_message_ends_typing(emulator):
    openid = emulator.customer()
    typing(emulator, openid)
    text(emulator, openid)
    assert emulator.state.customer(openid=openid)["typing"] is False
    assert typing(emulator, openid) == OK


def test_cancel_typing_ends_typing(emulator):
    openid = emulator.customer()
    typing(emulator, openid)
    assert typing(emulator, openid, "CancelTyping") == OK
    assert typing(emulator, openid) == OK


def test_typing_does_not_use_the_budget(emulator):
    openid = emulator.customer()
    for _ in range(3):
        typing(emulator, openid)
        typing(emulator, openid, "CancelTyping")
    assert emulator.state.customer(openid=openid)["remaining"] == 5

"""Bad arguments raise WeChatInvalidArgument before any HTTP request: the `rsps`
mock has no URL registered and must record zero calls — not even a token fetch."""

from __future__ import annotations

import io
from typing import Any

import pytest
import responses

from kfadmin.wechat import (
    MenuOption,
    MsgArticle,
    MsgMenu,
    MsgMinipPage,
    MsgVideo,
    WeChatClient,
    WeChatInvalidArgument,
)
from tests.wechat.helpers import APPID, SECRET

DAY = 24 * 3600

BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    # accounts
    ("add_account", {"kf_account": "", "nickname": "客服"}, "kf_account must not be empty"),
    ("add_account", {"kf_account": "   ", "nickname": "客服"}, "kf_account must not be empty"),
    ("add_account", {"kf_account": "test1", "nickname": "客服"}, "'@'"),
    ("add_account", {"kf_account": "test1@", "nickname": "客服"}, "'@'"),
    ("add_account", {"kf_account": "@test", "nickname": "客服"}, "'@'"),
    ("add_account", {"kf_account": "abcdefghijk@test", "nickname": "n"}, "at most 10"),
    ("add_account", {"kf_account": "bad-name@test", "nickname": "n"}, "underscores"),
    ("add_account", {"kf_account": "a@b", "nickname": ""}, "nickname must not be empty"),
    ("add_account", {"kf_account": "a@b", "nickname": "客" * 17}, "at most 16 characters"),
    ("add_account", {"kf_account": None, "nickname": "n"}, "must be a string"),
    ("update_account", {"kf_account": "a@b", "nickname": "x" * 17}, "at most 16"),
    ("update_account", {"kf_account": "nope", "nickname": "x"}, "'@'"),
    ("delete_account", {"kf_account": ""}, "kf_account must not be empty"),
    ("delete_account", {"kf_account": "no-at-sign"}, "'@'"),
    ("upload_avatar", {"kf_account": "x", "file": b"\xff\xd8\xff"}, "'@'"),
    ("upload_avatar", {"kf_account": "a@b", "file": b""}, "empty"),
    ("upload_avatar", {"kf_account": "a@b", "file": b"x" * (5 * 1024 * 1024 + 1)}, "5 MB"),
    ("upload_avatar", {"kf_account": "a@b", "file": io.StringIO("text")}, "binary"),
    ("upload_avatar", {"kf_account": "a@b", "file": 42}, "path, bytes or a binary file"),
    ("upload_avatar", {"kf_account": "a@b", "file": "/nonexistent/face.jpg"}, "Cannot read"),
    ("invite_worker", {"kf_account": "a@b", "invite_wx": ""}, "invite_wx must not be empty"),
    ("invite_worker", {"kf_account": "ab", "invite_wx": "wx"}, "'@'"),
    # sessions
    ("create_session", {"kf_account": "a@b", "openid": ""}, "openid must not be empty"),
    ("create_session", {"kf_account": "", "openid": "o"}, "kf_account must not be empty"),
    ("close_session", {"kf_account": "a", "openid": "o"}, "'@'"),
    ("close_session", {"kf_account": "a@b", "openid": " "}, "openid must not be empty"),
    ("get_session", {"openid": ""}, "openid must not be empty"),
    ("get_session", {"openid": 123}, "openid must be a string"),
    ("get_session_list", {"kf_account": "plain"}, "'@'"),
    # records
    ("get_msg_record_list", {"starttime": 100, "endtime": 99}, "must not be earlier"),
    ("get_msg_record_list", {"starttime": 0, "endtime": DAY + 1}, "at most 24 hours"),
    (
        "get_msg_record_list",
        {"starttime": 0, "endtime": 10, "number": 0},
        "number must be at least 1",
    ),
    ("get_msg_record_list", {"starttime": 0, "endtime": 10, "number": 10001}, "at most 10000"),
    (
        "get_msg_record_list",
        {"starttime": 0, "endtime": 10, "msgid": 0},
        "msgid must be at least 1",
    ),
    ("get_msg_record_list", {"starttime": "0", "endtime": 10}, "starttime must be an integer"),
    ("get_msg_record_list", {"starttime": 0, "endtime": 1.5}, "endtime must be an integer"),
    ("get_msg_record_list", {"starttime": -5, "endtime": 10}, "at least 0"),
    ("get_msg_record_list", {"starttime": True, "endtime": 10}, "must be an integer"),
    ("iter_msg_record_pages", {"starttime": 0, "endtime": DAY * 2}, "at most 24 hours"),
    ("iter_msg_record_pages", {"starttime": 0, "endtime": 1, "number": 0}, "number"),
    ("iter_msg_records", {"starttime": 10, "endtime": 0}, "must not be earlier"),
    # messages
    ("send_text_msg", {"openid": "", "content": "hi"}, "openid must not be empty"),
    ("send_text_msg", {"openid": "o", "content": ""}, "text.content must not be empty"),
    ("send_text_msg", {"openid": "o", "content": "hi", "kf_account": ""}, "kf_account must not"),
    ("send_text_msg", {"openid": "o", "content": "hi", "kf_account": "agent"}, "'@'"),
    ("send_image_msg", {"openid": "o", "media_id": ""}, "image.media_id must not be empty"),
    ("send_voice_msg", {"openid": "o", "media_id": " "}, "voice.media_id must not be empty"),
    ("send_video_msg", {"openid": "o", "video": MsgVideo(title="t")}, "video.media_id"),
    (
        "send_video_msg",
        {"openid": "o", "video": {"media_id": "m", "thumb": "x"}},
        "unknown keys thumb",
    ),
    ("send_video_msg", {"openid": "o", "video": "media"}, "must be a dict"),
    ("send_music_msg", {"openid": "o", "music": {"musicurl": "u"}}, "music.thumb_media_id"),
    ("send_news_msg", {"openid": "o", "articles": []}, "at least 1"),
    (
        "send_news_msg",
        {"openid": "o", "articles": [MsgArticle(title="a", url="u")] * 2},
        "at most 1 item",
    ),
    ("send_news_msg", {"openid": "o", "articles": {"title": "a", "url": "u"}}, "list of articles"),
    (
        "send_news_msg",
        {"openid": "o", "articles": [{"description": "d", "picurl": "p"}]},
        "news.articles[0] needs at least one of title or url",
    ),
    ("send_mpnews_msg", {"openid": "o", "media_id": ""}, "mpnews.media_id"),
    ("send_mpnews_article_msg", {"openid": "o", "article_id": ""}, "mpnewsarticle.article_id"),
    ("send_menu_msg", {"openid": "o", "menu": MsgMenu(head_content="h")}, "at least 1"),
    ("send_menu_msg", {"openid": "o", "menu": {"head_content": "h", "list": []}}, "at least 1"),
    (
        "send_menu_msg",
        {"openid": "o", "menu": MsgMenu(list=[MenuOption(id="", content="yes")])},
        "msgmenu.list[0].id must not be empty",
    ),
    (
        "send_menu_msg",
        {"openid": "o", "menu": {"list": [{"id": 101, "content": "yes"}]}},
        "must be a string",
    ),
    ("send_wxcard_msg", {"openid": "o", "card_id": ""}, "wxcard.card_id"),
    (
        "send_minip_page_msg",
        {"openid": "o", "page": MsgMinipPage(title="t", appid="a", pagepath="p")},
        "miniprogrampage.thumb_media_id",
    ),
    ("send_typing", {"openid": "o", "command": "typing"}, "'Typing', 'CancelTyping'"),
    ("send_typing", {"openid": "o", "command": ""}, "must be one of"),
    ("send_typing", {"openid": "", "command": "Typing"}, "openid must not be empty"),
    (
        "send_message",
        {"openid": "o", "msgtype": "location", "payload": {}},
        "msgtype must be one of",
    ),
    ("send_message", {"openid": "o", "msgtype": "text", "payload": None}, "must be a dict"),
    (
        "send_message",
        {"openid": "o", "msgtype": "text", "payload": {"content": "hi", "kfaccount": "a@b"}},
        "unknown keys kfaccount",
    ),
]


@pytest.mark.parametrize(("method", "kwargs", "message"), BAD_CALLS)
def test_bad_arguments_raise_before_any_http_call(
    rsps: responses.RequestsMock, method, kwargs, message
):
    # A client with an empty token store: even a token fetch would show up in calls.
    client = WeChatClient(APPID, SECRET)

    with pytest.raises(WeChatInvalidArgument) as caught:
        result = getattr(client, method)(**kwargs)
        next(iter(result))  # iterators must fail on creation, before this line

    assert message in str(caught.value)
    assert caught.value.errcode is None
    assert caught.value.explanation == str(caught.value)
    assert len(rsps.calls) == 0


def test_a_full_24_hour_window_and_equal_bounds_are_accepted(kf, rsps: responses.RequestsMock):
    from tests.wechat.helpers import BASE

    rsps.add(responses.POST, BASE + "/customservice/msgrecord/getmsglist", json={})

    kf.get_msg_record_list(starttime=1000, endtime=1000 + DAY)
    kf.get_msg_record_list(starttime=1000, endtime=1000)

    assert len(rsps.calls) == 2


def test_a_sixteen_character_chinese_nickname_is_accepted(kf, rsps: responses.RequestsMock):
    from tests.wechat.helpers import BASE

    rsps.add(responses.POST, BASE + "/customservice/kfaccount/add", json={"errcode": 0})

    kf.add_account("agent_01@gh_account", "客" * 16)

    assert len(rsps.calls) == 1

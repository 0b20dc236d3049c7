"""Every kf operation at the HTTP seam: exact method, path, query and body, and the
typed result parsed from WeChat's answer (wechat-kf-api.md §3–§6)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import responses

from kfadmin.wechat import (
    Account,
    AccountList,
    MenuOption,
    MsgArticle,
    MsgMenu,
    MsgMinipPage,
    MsgMusic,
    MsgRecord,
    MsgRecordList,
    MsgVideo,
    OnlineAccount,
    OnlineList,
    Session,
    SessionList,
    WaitCase,
    WeChatClient,
)
from tests.wechat.helpers import (
    BASE,
    OK,
    TOKEN,
    json_of,
    multipart_parts,
    only_request,
    path_of,
    query_of,
)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


# ------------------------------------------------------------ JSON POST operations

JSON_POSTS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    (
        "add_account",
        {"kf_account": "test1@test", "nickname": "客服1"},
        "/customservice/kfaccount/add",
        {"kf_account": "test1@test", "nickname": "客服1"},
    ),
    (
        "update_account",
        {"kf_account": "test1@test", "nickname": "客服1"},
        "/customservice/kfaccount/update",
        {"kf_account": "test1@test", "nickname": "客服1"},
    ),
    (
        "invite_worker",
        {"kf_account": "test1@test", "invite_wx": "test_kfwx"},
        "/customservice/kfaccount/inviteworker",
        {"kf_account": "test1@test", "invite_wx": "test_kfwx"},
    ),
    (
        "create_session",
        {"kf_account": "test1@test", "openid": "OPENID"},
        "/customservice/kfsession/create",
        {"kf_account": "test1@test", "openid": "OPENID"},
    ),
    (
        "close_session",
        {"kf_account": "test1@test", "openid": "OPENID"},
        "/customservice/kfsession/close",
        {"kf_account": "test1@test", "openid": "OPENID"},
    ),
    (
        "send_typing",
        {"openid": "OPENID", "command": "Typing"},
        "/cgi-bin/message/custom/typing",
        {"touser": "OPENID", "command": "Typing"},
    ),
    (
        "send_typing",
        {"openid": "OPENID", "command": "CancelTyping"},
        "/cgi-bin/message/custom/typing",
        {"touser": "OPENID", "command": "CancelTyping"},
    ),
]


@pytest.mark.parametrize(("method", "kwargs", "path", "body"), JSON_POSTS)
def test_it_posts_the_documented_json_body(
    kf: WeChatClient, rsps: responses.RequestsMock, method, kwargs, path, body
):
    rsps.add(responses.POST, BASE + path, json=OK)

    assert getattr(kf, method)(**kwargs) is None

    request = only_request(rsps)
    assert request.method == "POST"
    assert path_of(request) == path
    assert query_of(request) == [("access_token", TOKEN)]
    assert request.headers["Content-Type"] == JSON_CONTENT_TYPE
    assert json_of(request) == body


def test_it_sends_chinese_as_raw_utf8_without_unicode_escapes(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(responses.POST, BASE + "/customservice/kfaccount/add", json=OK)

    kf.add_account(kf_account="test1@test", nickname="客服1")

    body = only_request(rsps).body
    assert body == '{"kf_account":"test1@test","nickname":"客服1"}'.encode()
    assert b"\\u" not in body


def test_it_sends_the_body_of_a_request_as_bytes(kf: WeChatClient, rsps: responses.RequestsMock):
    # A str body would let requests pick an encoding; WeChat needs UTF-8 bytes.
    rsps.add(responses.POST, BASE + "/customservice/kfsession/create", json=OK)

    kf.create_session(kf_account="a@b", openid="o")

    assert isinstance(only_request(rsps).body, bytes)


def test_it_puts_access_token_in_the_query_and_nowhere_else(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(responses.POST, BASE + "/customservice/kfsession/close", json=OK)

    kf.close_session(kf_account="a@b", openid="o")

    request = only_request(rsps)
    assert TOKEN.encode() not in request.body
    assert not any(TOKEN in value for value in request.headers.values())


def test_it_honours_a_custom_base_url(store, rsps: responses.RequestsMock):
    from tests.wechat.helpers import APPID, SECRET

    client = WeChatClient(APPID, SECRET, base_url="http://127.0.0.1:8765/", token_store=store)
    rsps.add(responses.GET, "http://127.0.0.1:8765/cgi-bin/customservice/getkflist", json={})

    client.get_account_list()

    assert only_request(rsps).url.startswith("http://127.0.0.1:8765/cgi-bin/customservice/")


# ------------------------------------------------------------------ GET operations


def test_it_deletes_an_account_with_get_and_the_account_in_the_query(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(responses.GET, BASE + "/customservice/kfaccount/del", json=OK)

    assert kf.delete_account(kf_account="test1@test") is None

    request = only_request(rsps)
    assert request.method == "GET"
    assert path_of(request) == "/customservice/kfaccount/del"
    assert request.url.endswith(f"?access_token={TOKEN}&kf_account=test1%40test")
    assert query_of(request) == [("access_token", TOKEN), ("kf_account", "test1@test")]
    assert request.body is None


def test_it_gets_the_account_list_from_the_cgi_bin_path(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(
        responses.GET,
        BASE + "/cgi-bin/customservice/getkflist",
        json={
            "kf_list": [
                {
                    "kf_account": "test1@test",
                    "kf_headimgurl": "http://mmbiz.qpic.cn/mmbiz/x/300?wx_fmt=jpeg",
                    "kf_id": "1001",
                    "kf_nick": "ntest1",
                    "kf_wx": "kfwx1",
                },
                {
                    "kf_account": "test2@test",
                    "kf_headimgurl": "",
                    "kf_id": 1002,
                    "kf_nick": "ntest2",
                    "invite_wx": "kfwx2",
                    "invite_expire_time": 123456789,
                    "invite_status": "waiting",
                    "kf_openid": "unknown key from a newer doc variant",
                },
                {
                    "kf_account": "test3@test",
                    "kf_id": "1003",
                    "kf_nick": "ntest3",
                    "invite_wx": "kfwx3",
                    "invite_expire_time": "123456790",
                    "invite_status": "expired",
                },
            ]
        },
    )

    result = kf.get_account_list()

    request = only_request(rsps)
    assert request.method == "GET"
    assert path_of(request) == "/cgi-bin/customservice/getkflist"
    assert query_of(request) == [("access_token", TOKEN)]
    assert result == AccountList(
        kf_list=[
            Account(
                kf_account="test1@test",
                kf_nick="ntest1",
                kf_id="1001",
                kf_headimgurl="http://mmbiz.qpic.cn/mmbiz/x/300?wx_fmt=jpeg",
                kf_wx="kfwx1",
            ),
            Account(
                kf_account="test2@test",
                kf_nick="ntest2",
                kf_id="1002",
                invite_wx="kfwx2",
                invite_expire_time=123456789,
                invite_status="waiting",
            ),
            Account(
                kf_account="test3@test",
                kf_nick="ntest3",
                kf_id="1003",
                invite_wx="kfwx3",
                invite_expire_time=123456790,
                invite_status="expired",
            ),
        ]
    )


def test_it_returns_an_empty_account_list_when_the_key_is_missing(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(responses.GET, BASE + "/cgi-bin/customservice/getkflist", json={})

    assert kf.get_account_list() == AccountList(kf_list=[])


def test_it_gets_the_online_list(kf: WeChatClient, rsps: responses.RequestsMock):
    rsps.add(
        responses.GET,
        BASE + "/cgi-bin/customservice/getonlinekflist",
        json={
            "kf_online_list": [
                {"kf_account": "test1@test", "status": 1, "kf_id": "1001", "accepted_case": 1},
                {
                    "kf_account": "test2@test",
                    "status": 1,
                    "kf_id": 1002,
                    "accepted_case": 2,
                    "auto_accept": 3,
                },
            ]
        },
    )

    result = kf.get_online_list()

    request = only_request(rsps)
    assert (request.method, path_of(request)) == ("GET", "/cgi-bin/customservice/getonlinekflist")
    assert query_of(request) == [("access_token", TOKEN)]
    assert result == OnlineList(
        kf_online_list=[
            OnlineAccount(kf_account="test1@test", status=1, kf_id="1001", accepted_case=1),
            OnlineAccount(kf_account="test2@test", status=1, kf_id="1002", accepted_case=2),
        ]
    )


def test_it_gets_a_session_and_fills_in_the_openid(kf: WeChatClient, rsps: responses.RequestsMock):
    rsps.add(
        responses.GET,
        BASE + "/customservice/kfsession/getsession",
        json={"createtime": 123456789, "kf_account": "test1@test", "errcode": 0, "errmsg": "ok"},
    )

    result = kf.get_session(openid="OPENID")

    request = only_request(rsps)
    assert (request.method, path_of(request)) == ("GET", "/customservice/kfsession/getsession")
    assert query_of(request) == [("access_token", TOKEN), ("openid", "OPENID")]
    assert result == Session(kf_account="test1@test", openid="OPENID", createtime=123456789)


def test_it_reports_an_unserved_customer_with_an_empty_kf_account(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(
        responses.GET,
        BASE + "/customservice/kfsession/getsession",
        json={"createtime": 0, "kf_account": ""},
    )

    assert kf.get_session(openid="OPENID").kf_account == ""


def test_it_gets_an_agents_session_list(kf: WeChatClient, rsps: responses.RequestsMock):
    rsps.add(
        responses.GET,
        BASE + "/customservice/kfsession/getsessionlist",
        json={
            "sessionlist": [
                {"createtime": 123456789, "openid": "OPENID1"},
                {"createtime": 123456789, "openid": "OPENID2"},
            ]
        },
    )

    result = kf.get_session_list(kf_account="test1@test")

    request = only_request(rsps)
    assert (request.method, path_of(request)) == ("GET", "/customservice/kfsession/getsessionlist")
    assert query_of(request) == [("access_token", TOKEN), ("kf_account", "test1@test")]
    assert result == SessionList(
        sessionlist=[
            Session(openid="OPENID1", createtime=123456789),
            Session(openid="OPENID2", createtime=123456789),
        ]
    )


def test_it_gets_the_wait_case(kf: WeChatClient, rsps: responses.RequestsMock):
    rsps.add(
        responses.GET,
        BASE + "/customservice/kfsession/getwaitcase",
        json={
            "count": 150,
            "waitcaselist": [
                {"latest_time": 123456789, "openid": "OPENID1"},
                {"latest_time": 123456789, "openid": "OPENID2"},
            ],
        },
    )

    result = kf.get_wait_case()

    request = only_request(rsps)
    assert (request.method, path_of(request)) == ("GET", "/customservice/kfsession/getwaitcase")
    assert query_of(request) == [("access_token", TOKEN)]
    assert result == WaitCase(
        count=150,
        waitcaselist=[
            Session(openid="OPENID1", latest_time=123456789),
            Session(openid="OPENID2", latest_time=123456789),
        ],
    )


# --------------------------------------------------------------------- records


def test_it_posts_the_msgrecord_query_and_parses_the_page(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(
        responses.POST,
        BASE + "/customservice/msgrecord/getmsglist",
        json={
            "recordlist": [
                {
                    "openid": "oDF3iY9WMaswOPWjCIp_f3Bnpljk",
                    "opercode": 2002,
                    "text": " 您好，客服test1为您服务。",
                    "time": 1400563710,
                    "worker": "test1@test",
                },
                {
                    "openid": "oDF3iY9WMaswOPWjCIp_f3Bnpljk",
                    "opercode": "2003",
                    "text": "[image]",
                    "time": 1400563731,
                    "worker": "test1@test",
                },
            ],
            "number": 2,
            "msgid": 20165267,
        },
    )

    result = kf.get_msg_record_list(starttime=987654321, endtime=987654321)

    request = only_request(rsps)
    assert (request.method, path_of(request)) == ("POST", "/customservice/msgrecord/getmsglist")
    assert query_of(request) == [("access_token", TOKEN)]
    assert json_of(request) == {
        "starttime": 987654321,
        "endtime": 987654321,
        "msgid": 1,
        "number": 10000,
    }
    assert result == MsgRecordList(
        recordlist=[
            MsgRecord(
                worker="test1@test",
                openid="oDF3iY9WMaswOPWjCIp_f3Bnpljk",
                opercode=2002,
                text=" 您好，客服test1为您服务。",
                time=1400563710,
            ),
            MsgRecord(
                worker="test1@test",
                openid="oDF3iY9WMaswOPWjCIp_f3Bnpljk",
                opercode=2003,
                text="[image]",
                time=1400563731,
            ),
        ],
        number=2,
        msgid=20165267,
    )


def test_it_passes_msgid_and_number_through(kf: WeChatClient, rsps: responses.RequestsMock):
    rsps.add(responses.POST, BASE + "/customservice/msgrecord/getmsglist", json={})

    result = kf.get_msg_record_list(starttime=100, endtime=86500, msgid=42, number=7)

    assert json_of(only_request(rsps)) == {
        "starttime": 100,
        "endtime": 86500,
        "msgid": 42,
        "number": 7,
    }
    assert result == MsgRecordList()


# ------------------------------------------------------------------ avatar upload

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + "中文".encode()


def _upload_request(rsps: responses.RequestsMock):
    request = only_request(rsps)
    assert request.method == "POST"
    assert path_of(request) == "/customservice/kfaccount/uploadheadimg"
    assert query_of(request) == [("access_token", TOKEN), ("kf_account", "test1@test")]
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    return request


def test_it_uploads_avatar_bytes_as_one_media_part(kf: WeChatClient, rsps: responses.RequestsMock):
    rsps.add(responses.POST, BASE + "/customservice/kfaccount/uploadheadimg", json=OK)

    assert kf.upload_avatar(kf_account="test1@test", file=JPEG) is None

    assert multipart_parts(_upload_request(rsps)) == [("media", "avatar.jpg", JPEG)]


def test_it_uploads_an_avatar_from_a_path_named_after_the_file(
    kf: WeChatClient, rsps: responses.RequestsMock, tmp_path
):
    image = tmp_path / "agent_1.jpg"
    image.write_bytes(JPEG)
    rsps.add(responses.POST, BASE + "/customservice/kfaccount/uploadheadimg", json=OK)

    kf.upload_avatar(kf_account="test1@test", file=str(image))

    assert multipart_parts(_upload_request(rsps)) == [("media", "agent_1.jpg", JPEG)]


def test_it_uploads_an_avatar_from_a_pathlib_path(
    kf: WeChatClient, rsps: responses.RequestsMock, tmp_path
):
    image = tmp_path / "face.jpg"
    image.write_bytes(JPEG)
    rsps.add(responses.POST, BASE + "/customservice/kfaccount/uploadheadimg", json=OK)

    kf.upload_avatar(kf_account="test1@test", file=image)

    assert multipart_parts(_upload_request(rsps)) == [("media", "face.jpg", JPEG)]


def test_it_uploads_an_avatar_from_an_open_file(
    kf: WeChatClient, rsps: responses.RequestsMock, tmp_path
):
    image = tmp_path / "open.jpg"
    image.write_bytes(JPEG)
    rsps.add(responses.POST, BASE + "/customservice/kfaccount/uploadheadimg", json=OK)

    with image.open("rb") as handle:
        kf.upload_avatar(kf_account="test1@test", file=handle)

    assert multipart_parts(_upload_request(rsps)) == [("media", "open.jpg", JPEG)]


def test_it_names_a_nameless_file_object_avatar_jpg(kf: WeChatClient, rsps: responses.RequestsMock):
    rsps.add(responses.POST, BASE + "/customservice/kfaccount/uploadheadimg", json=OK)

    kf.upload_avatar(kf_account="test1@test", file=io.BytesIO(JPEG))

    assert multipart_parts(_upload_request(rsps)) == [("media", "avatar.jpg", JPEG)]


# ---------------------------------------------------------------------- messages

SENDS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("send_text_msg", {"content": "Hello World"}, "text", {"content": "Hello World"}),
    ("send_image_msg", {"media_id": "MEDIA_ID"}, "image", {"media_id": "MEDIA_ID"}),
    ("send_voice_msg", {"media_id": "MEDIA_ID"}, "voice", {"media_id": "MEDIA_ID"}),
    (
        "send_video_msg",
        {
            "video": MsgVideo(
                media_id="MEDIA_ID",
                thumb_media_id="MEDIA_ID",
                title="TITLE",
                description="DESCRIPTION",
            )
        },
        "video",
        {
            "media_id": "MEDIA_ID",
            "thumb_media_id": "MEDIA_ID",
            "title": "TITLE",
            "description": "DESCRIPTION",
        },
    ),
    (
        "send_video_msg",
        {"video": {"media_id": "MEDIA_ID"}},
        "video",
        {"media_id": "MEDIA_ID", "thumb_media_id": "", "title": "", "description": ""},
    ),
    (
        "send_music_msg",
        {
            "music": MsgMusic(
                title="MUSIC_TITLE",
                description="MUSIC_DESCRIPTION",
                musicurl="MUSIC_URL",
                hqmusicurl="HQ_MUSIC_URL",
                thumb_media_id="THUMB_MEDIA_ID",
            )
        },
        "music",
        {
            "title": "MUSIC_TITLE",
            "description": "MUSIC_DESCRIPTION",
            "musicurl": "MUSIC_URL",
            "hqmusicurl": "HQ_MUSIC_URL",
            "thumb_media_id": "THUMB_MEDIA_ID",
        },
    ),
    (
        "send_music_msg",
        {"music": {"musicurl": "MUSIC_URL", "thumb_media_id": "THUMB_MEDIA_ID"}},
        "music",
        {
            "title": "",
            "description": "",
            "musicurl": "MUSIC_URL",
            "hqmusicurl": "",
            "thumb_media_id": "THUMB_MEDIA_ID",
        },
    ),
    (
        "send_news_msg",
        {
            "articles": [
                MsgArticle(
                    title="Happy Day",
                    description="Is Really A Happy Day",
                    url="URL",
                    picurl="PIC_URL",
                )
            ]
        },
        "news",
        {
            "articles": [
                {
                    "title": "Happy Day",
                    "description": "Is Really A Happy Day",
                    "url": "URL",
                    "picurl": "PIC_URL",
                }
            ]
        },
    ),
    (
        "send_news_msg",
        {"articles": [{"title": "Happy Day", "url": "URL"}]},
        "news",
        {"articles": [{"title": "Happy Day", "description": "", "url": "URL", "picurl": ""}]},
    ),
    ("send_mpnews_msg", {"media_id": "MEDIA_ID"}, "mpnews", {"media_id": "MEDIA_ID"}),
    (
        "send_mpnews_article_msg",
        {"article_id": "ARTICLE_ID"},
        "mpnewsarticle",
        {"article_id": "ARTICLE_ID"},
    ),
    (
        "send_menu_msg",
        {
            "menu": MsgMenu(
                head_content="您对本次服务是否满意呢? ",
                list=[MenuOption(id="101", content="满意"), MenuOption(id="102", content="不满意")],
                tail_content="欢迎再次光临",
            )
        },
        "msgmenu",
        {
            "head_content": "您对本次服务是否满意呢? ",
            "tail_content": "欢迎再次光临",
            "list": [{"id": "101", "content": "满意"}, {"id": "102", "content": "不满意"}],
        },
    ),
    (
        "send_menu_msg",
        {"menu": {"list": [{"id": "101", "content": "满意"}]}},
        "msgmenu",
        {"head_content": "", "tail_content": "", "list": [{"id": "101", "content": "满意"}]},
    ),
    (
        "send_wxcard_msg",
        {"card_id": "123dsdajkasd231jhksad"},
        "wxcard",
        {"card_id": "123dsdajkasd231jhksad"},
    ),
    (
        "send_minip_page_msg",
        {
            "page": MsgMinipPage(
                title="title",
                appid="appid",
                pagepath="pagepath",
                thumb_media_id="thumb_media_id",
            )
        },
        "miniprogrampage",
        {
            "title": "title",
            "appid": "appid",
            "pagepath": "pagepath",
            "thumb_media_id": "thumb_media_id",
        },
    ),
]


@pytest.mark.parametrize(("method", "kwargs", "msgtype", "payload"), SENDS)
def test_it_sends_each_message_type_without_customservice_by_default(
    kf: WeChatClient, rsps: responses.RequestsMock, method, kwargs, msgtype, payload
):
    rsps.add(responses.POST, BASE + "/cgi-bin/message/custom/send", json=OK)

    assert getattr(kf, method)(openid="OPENID", **kwargs) is None

    request = only_request(rsps)
    assert (request.method, path_of(request)) == ("POST", "/cgi-bin/message/custom/send")
    assert query_of(request) == [("access_token", TOKEN)]
    assert request.headers["Content-Type"] == JSON_CONTENT_TYPE
    assert json_of(request) == {"touser": "OPENID", "msgtype": msgtype, msgtype: payload}


@pytest.mark.parametrize(("method", "kwargs", "msgtype", "payload"), SENDS)
def test_it_sends_each_message_type_as_the_given_agent(
    kf: WeChatClient, rsps: responses.RequestsMock, method, kwargs, msgtype, payload
):
    rsps.add(responses.POST, BASE + "/cgi-bin/message/custom/send", json=OK)

    getattr(kf, method)(openid="OPENID", kf_account="test1@kftest", **kwargs)

    assert json_of(only_request(rsps)) == {
        "touser": "OPENID",
        "msgtype": msgtype,
        msgtype: payload,
        "customservice": {"kf_account": "test1@kftest"},
    }


def test_it_keeps_links_and_chinese_in_text_unescaped(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(responses.POST, BASE + "/cgi-bin/message/custom/send", json=OK)
    content = (
        '你好 <a href="http://www.qq.com" data-miniprogram-appid="appid">点击跳小程序</a> & 再见'
    )

    kf.send_text_msg(openid="OPENID", content=content)

    body = only_request(rsps).body
    assert content.encode("utf-8") in body.replace(b'\\"', b'"')
    assert b'<a href=\\"http://www.qq.com\\"' in body
    assert b"\\u" not in body
    assert b"&amp;" not in body


def test_generic_send_message_accepts_a_stored_payload(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(responses.POST, BASE + "/cgi-bin/message/custom/send", json=OK)

    kf.send_message("OPENID", "wxcard", {"card_id": "CARD", "card_ext": '{"signature":"x"}'}, "a@b")

    assert json_of(only_request(rsps)) == {
        "touser": "OPENID",
        "msgtype": "wxcard",
        "wxcard": {"card_id": "CARD", "card_ext": '{"signature":"x"}'},
        "customservice": {"kf_account": "a@b"},
    }


def test_generic_send_message_accepts_a_dataclass_payload(
    kf: WeChatClient, rsps: responses.RequestsMock
):
    rsps.add(responses.POST, BASE + "/cgi-bin/message/custom/send", json=OK)

    kf.send_message("OPENID", "video", MsgVideo(media_id="M"))

    assert json_of(only_request(rsps))["video"] == {
        "media_id": "M",
        "thumb_media_id": "",
        "title": "",
        "description": "",
    }


@pytest.mark.parametrize(
    ("method", "kwargs", "msgtype", "payload"),
    [
        (
            "send_news_msg",
            {"articles": [{"title": "只有标题"}]},
            "news",
            {"articles": [{"title": "只有标题", "description": "", "url": "", "picurl": ""}]},
        ),
        (
            "send_news_msg",
            {"articles": [MsgArticle(url="https://example.com/a?x=1&y=2")]},
            "news",
            {
                "articles": [
                    {
                        "title": "",
                        "description": "",
                        "url": "https://example.com/a?x=1&y=2",
                        "picurl": "",
                    }
                ]
            },
        ),
        (
            "send_minip_page_msg",
            {"page": {"appid": "wxmini", "pagepath": "pages/index?id=1", "thumb_media_id": "T"}},
            "miniprogrampage",
            {"title": "", "appid": "wxmini", "pagepath": "pages/index?id=1", "thumb_media_id": "T"},
        ),
    ],
)
def test_it_leaves_optional_fields_to_wechat(
    kf: WeChatClient, rsps: responses.RequestsMock, method, kwargs, msgtype, payload
):
    rsps.add(responses.POST, BASE + "/cgi-bin/message/custom/send", json=OK)

    getattr(kf, method)(openid="OPENID", **kwargs)

    assert json_of(only_request(rsps))[msgtype] == payload


def test_it_identifies_itself_unless_given_a_session(store, rsps: responses.RequestsMock):
    import requests

    from tests.wechat.helpers import APPID, SECRET

    rsps.add(responses.GET, BASE + "/customservice/kfsession/getwaitcase", json={})
    own = WeChatClient(APPID, SECRET, token_store=store)
    custom_session = requests.Session()
    custom_session.headers["User-Agent"] = "custom/1"
    given = WeChatClient(APPID, SECRET, token_store=store, session=custom_session)

    own.get_wait_case()
    given.get_wait_case()

    assert [c.request.headers["User-Agent"] for c in rsps.calls] == [
        "kfadmin-wechat/1.0",
        "custom/1",
    ]

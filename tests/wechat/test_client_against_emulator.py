"""Every client method against the offline emulator over real loopback HTTP.

The emulator is an independent implementation of WeChat's side (tests/conftest.py
`emulator` fixture, kfadmin/emulator/): these tests prove the client and the
emulator agree on paths, query strings, bodies, multipart uploads, result shapes,
errcodes, token rotation and transport faults.
"""

from __future__ import annotations

import pytest

from kfadmin.wechat import (
    MenuOption,
    MsgArticle,
    MsgMenu,
    MsgMinipPage,
    MsgMusic,
    MsgVideo,
    WeChatClient,
    WeChatConflict,
    WeChatInvalidArgument,
    WeChatNotFound,
    WeChatRateLimited,
    WeChatReplyWindowClosed,
    WeChatSendBudgetExhausted,
    WeChatSystemBusy,
    WeChatTokenError,
    WeChatTransportError,
)
from tests.wechat import media_samples as samples
from tests.wechat.helpers import parse_multipart

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8 + b"\xff\xd9"
SEND = "/cgi-bin/message/custom/send"


@pytest.fixture
def wx(emulator) -> WeChatClient:
    return WeChatClient(emulator.appid, emulator.secret, base_url=emulator.base_url, timeout=5)


def calls_to(emulator, path: str) -> list:
    return [call for call in emulator.calls if call.path == path]


# ------------------------------------------------------------------------ tokens


@pytest.mark.parametrize(
    ("endpoint", "path"), [("stable_token", "/cgi-bin/stable_token"), ("token", "/cgi-bin/token")]
)
def test_it_fetches_and_uses_both_kinds_of_token(emulator, endpoint, path):
    client = WeChatClient(
        emulator.appid, emulator.secret, base_url=emulator.base_url, token_endpoint=endpoint
    )

    token = client.fetch_access_token()
    client.get_account_list()

    assert token.expires_in > 0
    assert len(calls_to(emulator, path)) == 1
    (listing,) = calls_to(emulator, "/cgi-bin/customservice/getkflist")
    assert listing.query["access_token"] == token.access_token


@pytest.mark.parametrize("endpoint", ["stable_token", "token"])
def test_the_fetched_token_carries_the_expires_in_wechat_answered(emulator, endpoint):
    # Both endpoints answer exactly 7200 for a new token; the client's own 300 s margin
    # must not show in the result.
    client = WeChatClient(
        emulator.appid, emulator.secret, base_url=emulator.base_url, token_endpoint=endpoint
    )

    token = client.fetch_access_token()

    assert token.expires_in == 7200
    cached = client.token_store.get(emulator.appid)
    assert cached.expires_at < cached.wechat_expires_at


def test_a_stable_token_with_a_short_remaining_life_is_reported_as_wechat_said(emulator, wx):
    emulator.control("issue_token", kind="stable")
    emulator.control("advance", seconds=6000)

    token = wx.fetch_access_token()

    # WeChat's remaining lifetime of the token it already had (about 1200 s), as is.
    assert 0 < token.expires_in <= 1200
    assert token.expires_in > 1200 - 300


def test_it_caches_the_token_between_calls(emulator, wx):
    wx.get_account_list()
    wx.get_online_list()
    wx.get_wait_case()

    assert len(calls_to(emulator, "/cgi-bin/stable_token")) == 1


def test_a_wrong_secret_surfaces_as_a_token_error(emulator):
    client = WeChatClient(emulator.appid, "not-the-secret", base_url=emulator.base_url)

    with pytest.raises(WeChatTokenError):
        client.get_wait_case()

    assert [call.path for call in emulator.calls] == ["/cgi-bin/stable_token"]


def test_it_refreshes_once_after_the_emulator_revokes_all_tokens(emulator, wx):
    wx.get_wait_case()
    emulator.state.invalidate_tokens(appid=emulator.appid)

    wx.get_wait_case()

    first, stale, retried = calls_to(emulator, "/customservice/kfsession/getwaitcase")
    assert len(calls_to(emulator, "/cgi-bin/stable_token")) == 2
    assert stale.query["access_token"] == first.query["access_token"]
    assert retried.query["access_token"] != stale.query["access_token"]


def test_a_revoked_token_during_a_send_is_refreshed_and_the_identical_body_resent(emulator, wx):
    openid = emulator.customer()
    emulator.state.add_fault(kind="invalidate_token", next=1, path_prefix=SEND)

    wx.send_text_msg(openid, '重发测试 <a href="https://example.com">链接</a>')

    first, second = calls_to(emulator, SEND)
    assert first.body == second.body
    assert first.query["access_token"] != second.query["access_token"]


def test_the_avatar_is_resent_in_full_after_a_token_refresh(emulator, wx):
    agent = emulator.bound_agent("avatar")
    emulator.state.add_fault(
        kind="invalidate_token", next=1, path_prefix="/customservice/kfaccount/uploadheadimg"
    )

    wx.upload_avatar(agent, JPEG)

    first, second = calls_to(emulator, "/customservice/kfaccount/uploadheadimg")
    for call in (first, second):
        assert call.query["kf_account"] == agent
        assert parse_multipart(call.headers["content-type"], call.body) == [
            ("media", "avatar.jpg", JPEG)
        ]


def test_a_token_rejected_twice_surfaces_without_a_third_try(emulator, wx):
    emulator.state.add_fault(
        kind="errcode", errcode=40001, next=5, path_prefix="/cgi-bin/customservice/getkflist"
    )

    with pytest.raises(WeChatTokenError) as caught:
        wx.get_account_list()

    assert caught.value.errcode == 40001
    assert len(calls_to(emulator, "/cgi-bin/customservice/getkflist")) == 2


# ---------------------------------------------------------------------- accounts


def test_it_manages_an_agent_account_end_to_end(emulator, wx):
    account = emulator.kf_account("alice")

    wx.add_account(account, "客服一号")
    wx.update_account(account, "客服小艾")
    wx.upload_avatar(account, JPEG)
    wx.invite_worker(account, "alice_wx")

    (listed,) = wx.get_account_list().kf_list
    assert (listed.kf_account, listed.kf_nick) == (account, "客服小艾")
    assert listed.kf_id and isinstance(listed.kf_id, str)
    assert listed.kf_headimgurl
    assert (listed.invite_wx, listed.invite_status) == ("alice_wx", "waiting")
    assert listed.invite_expire_time > emulator.state.now()

    emulator.state.invite_respond(appid=emulator.appid, kf_account=account, action="accept")
    emulator.state.agent_online(appid=emulator.appid, kf_account=account)
    (bound,) = wx.get_account_list().kf_list
    (online,) = wx.get_online_list().kf_online_list
    assert bound.kf_wx == "alice_wx"
    assert (online.kf_account, online.status, online.kf_id) == (account, 1, listed.kf_id)

    wx.delete_account(account)
    assert wx.get_account_list().kf_list == []


def test_the_emulator_receives_raw_utf8_json(emulator, wx):
    wx.add_account(emulator.kf_account("bob"), "客服二号")

    (call,) = calls_to(emulator, "/customservice/kfaccount/add")
    # The emulator records header names in lower case.
    assert call.headers["content-type"] == "application/json; charset=utf-8"
    assert call.headers["user-agent"].startswith("kfadmin-wechat/")
    assert "客服二号".encode() in call.body
    assert b"\\u" not in call.body
    assert call.json == {"kf_account": emulator.kf_account("bob"), "nickname": "客服二号"}


@pytest.mark.parametrize(
    ("action", "error_class", "errcode"),
    [
        ("duplicate", WeChatConflict, 65406),
        ("foreign_suffix", WeChatInvalidArgument, 65404),
        ("update_unknown", WeChatNotFound, 65401),
        ("invite_bound", WeChatConflict, 65412),
    ],
)
def test_wechat_side_account_errors_arrive_typed(emulator, wx, action, error_class, errcode):
    existing = emulator.bound_agent("carol")

    with pytest.raises(error_class) as caught:
        if action == "duplicate":
            wx.add_account(existing, "again")
        elif action == "foreign_suffix":
            wx.add_account("dave@some_other_oa", "Dave")
        elif action == "update_unknown":
            wx.update_account(emulator.kf_account("nobody"), "Nobody")
        else:
            wx.invite_worker(existing, "another_wx")

    assert caught.value.errcode == errcode
    assert caught.value.explanation


# ---------------------------------------------------------------------- sessions


def test_it_runs_a_session_end_to_end(emulator, wx):
    agent = emulator.bound_agent("erin")
    openid = emulator.customer(text="我的订单到哪了？")

    waiting = wx.get_wait_case()
    assert waiting.count == 1
    assert [case.openid for case in waiting.waitcaselist] == [openid]
    assert waiting.waitcaselist[0].latest_time > 0

    wx.create_session(agent, openid)
    session = wx.get_session(openid)
    assert (session.kf_account, session.openid) == (agent, openid)
    assert session.createtime > 0
    assert [s.openid for s in wx.get_session_list(agent).sessionlist] == [openid]
    assert wx.get_wait_case().count == 0

    wx.close_session(agent, openid)
    assert wx.get_session(openid).kf_account == ""
    assert wx.get_session_list(agent).sessionlist == []


def test_wechat_side_session_errors_arrive_typed(emulator, wx):
    offline = emulator.bound_agent("frank", online=False)
    online = emulator.bound_agent("grace")
    openid = emulator.customer()

    with pytest.raises(WeChatConflict) as not_online:
        wx.create_session(offline, openid)
    with pytest.raises(WeChatNotFound) as no_session:
        wx.close_session(online, openid)

    assert not_online.value.errcode == 65415
    assert no_session.value.errcode == 65413


# ---------------------------------------------------------------------- messages


def test_it_sends_every_message_type_and_typing(emulator, wx):
    agent = emulator.bound_agent("henry")
    openid = emulator.customer()
    for kind, media_id in (
        ("image", "MEDIA_IMAGE"), ("voice", "MEDIA_VOICE"), ("video", "MEDIA_VIDEO"), ("thumb", "THUMB"),
        ("thumb", "T"), ("news", "MEDIA_NEWS"), ("article", "ARTICLE_ID"),
    ):
        emulator.media(kind, media_id)
    sends = [
        lambda: wx.send_text_msg(openid, "您好，请问有什么可以帮您？", kf_account=agent),
        lambda: wx.send_image_msg(openid, "MEDIA_IMAGE"),
        lambda: wx.send_voice_msg(openid, "MEDIA_VOICE"),
        lambda: wx.send_video_msg(openid, MsgVideo(media_id="MEDIA_VIDEO", title="视频")),
        lambda: wx.send_music_msg(
            openid, MsgMusic(musicurl="https://x/m.mp3", thumb_media_id="THUMB"), kf_account=agent
        ),
        lambda: wx.send_news_msg(openid, [MsgArticle(title="新品", url="https://x/a")]),
        lambda: wx.send_mpnews_msg(openid, "MEDIA_NEWS"),
        lambda: wx.send_mpnews_article_msg(openid, "ARTICLE_ID"),
        lambda: wx.send_menu_msg(
            openid,
            MsgMenu(
                head_content="满意吗？",
                list=[MenuOption("101", "满意"), MenuOption("102", "不满意")],
            ),
        ),
        lambda: wx.send_wxcard_msg(openid, "CARD_ID"),
        lambda: wx.send_minip_page_msg(
            openid,
            MsgMinipPage(
                title="小程序", appid="wxmini", pagepath="pages/index", thumb_media_id="T"
            ),
        ),
        lambda: wx.send_message(openid, "text", {"content": "stored payload"}, kf_account=agent),
    ]

    wx.send_typing(openid, "Typing")
    wx.send_typing(openid, "CancelTyping")
    for send in sends:
        # Each customer message grants a fresh budget of 5 sends.
        emulator.customer(openid=openid, text="继续")
        send()

    received = calls_to(emulator, SEND)
    assert [call.json["msgtype"] for call in received] == [
        "text",
        "image",
        "voice",
        "video",
        "music",
        "news",
        "mpnews",
        "mpnewsarticle",
        "msgmenu",
        "wxcard",
        "miniprogrampage",
        "text",
    ]
    assert [call.json.get("customservice") for call in received] == [
        {"kf_account": agent},
        None,
        None,
        None,
        {"kf_account": agent},
        None,
        None,
        None,
        None,
        None,
        None,
        {"kf_account": agent},
    ]
    assert [c.json["command"] for c in calls_to(emulator, "/cgi-bin/message/custom/typing")] == [
        "Typing",
        "CancelTyping",
    ]


def test_a_customer_who_never_wrote_is_outside_the_reply_window(emulator, wx):
    openid = emulator.state.add_customer(appid=emulator.appid)["openid"]

    with pytest.raises(WeChatReplyWindowClosed) as caught:
        wx.send_text_msg(openid, "hello")

    assert caught.value.errcode == 45015
    assert len(calls_to(emulator, SEND)) == 1


def test_the_reply_window_closes_after_48_hours(emulator, wx):
    openid = emulator.customer()
    wx.send_text_msg(openid, "within the window")
    emulator.state.advance(48 * 3600 + 1)

    with pytest.raises(WeChatReplyWindowClosed):
        wx.send_text_msg(openid, "too late")


def test_the_sixth_send_after_one_customer_message_exhausts_the_budget(emulator, wx):
    openid = emulator.customer()
    for n in range(5):
        wx.send_text_msg(openid, f"reply {n}")

    with pytest.raises(WeChatSendBudgetExhausted) as caught:
        wx.send_text_msg(openid, "one too many")

    assert caught.value.errcode == 45047
    assert len(calls_to(emulator, SEND)) == 6


# ----------------------------------------------------------------------- records


def test_it_pages_through_the_history_of_a_window(emulator, wx):
    start = int(emulator.state.now()) - 7200
    emulator.state.generate_records(appid=emulator.appid, count=25, start=start, end=start + 3600)

    pages = list(wx.iter_msg_record_pages(start, start + 3600, number=10))
    records = list(wx.iter_msg_records(start, start + 3600, number=10))

    assert [len(page.recordlist) for page in pages] == [10, 10, 5]
    assert len(records) == 25
    assert all(start <= r.time <= start + 3600 for r in records)
    assert [r.time for r in records] == sorted(r.time for r in records)
    requested = [c.json["msgid"] for c in calls_to(emulator, "/customservice/msgrecord/getmsglist")]
    assert requested[:3] == [1, pages[0].msgid, pages[1].msgid]


def test_an_exactly_full_last_page_ends_with_an_empty_page(emulator, wx):
    start = int(emulator.state.now()) - 7200
    emulator.state.generate_records(appid=emulator.appid, count=20, start=start, end=start + 60)

    pages = list(wx.iter_msg_record_pages(start, start + 60, number=10))

    assert [len(page.recordlist) for page in pages] == [10, 10, 0]


def test_live_activity_shows_up_in_the_history(emulator, wx):
    agent = emulator.bound_agent("iris")
    openid = emulator.customer(text="在吗")
    wx.create_session(agent, openid)
    wx.send_text_msg(openid, "在的，您好", kf_account=agent)
    now = int(emulator.state.now())

    records = list(wx.iter_msg_records(now - 60, now + 1))

    assert ("在的，您好", 2002, agent) in [(r.text, r.opercode, r.worker) for r in records]


# ------------------------------------------------------------------------ faults


@pytest.mark.parametrize(
    ("errcode", "error_class"),
    [(-1, WeChatSystemBusy), (45009, WeChatRateLimited), (45011, WeChatRateLimited)],
)
def test_injected_errcodes_arrive_typed_and_are_not_retried(emulator, wx, errcode, error_class):
    wx.fetch_access_token()
    emulator.state.add_fault(kind="errcode", errcode=errcode, next=1)

    with pytest.raises(error_class) as caught:
        wx.get_online_list()

    assert caught.value.retryable is (errcode == -1)
    assert len(calls_to(emulator, "/cgi-bin/customservice/getonlinekflist")) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_errors_are_retryable_transport_errors(emulator, wx, status):
    wx.fetch_access_token()
    emulator.state.add_fault(kind="http", status=status, next=1)

    with pytest.raises(WeChatTransportError) as caught:
        wx.get_wait_case()

    assert caught.value.http_status == status
    assert caught.value.retryable is True


def test_a_dropped_connection_is_a_transport_error(emulator, wx):
    wx.fetch_access_token()
    emulator.state.add_fault(kind="drop", next=1)

    with pytest.raises(WeChatTransportError):
        wx.get_wait_case()


def test_a_slow_answer_times_out_as_a_transport_error(emulator):
    client = WeChatClient(emulator.appid, emulator.secret, base_url=emulator.base_url, timeout=0.3)
    client.fetch_access_token()
    emulator.state.add_fault(kind="slow", delay=1.0, next=1)

    with pytest.raises(WeChatTransportError, match="timed out"):
        client.get_wait_case()


# ------------------------------------------------------------------------ media


def test_it_uploads_media_fetches_it_back_and_sends_it(emulator, wx):
    picture = samples.png(32, 32)
    uploaded = wx.upload_media("image", picture)
    fetched = wx.get_media(uploaded.media_id)
    openid = emulator.customer()
    wx.send_image_msg(openid, uploaded.media_id)

    assert uploaded.type == "image" and uploaded.created_at == int(emulator.state.now())
    assert (fetched.content, fetched.content_type) == (picture, "image/png")
    [call] = calls_to(emulator, "/cgi-bin/media/upload")
    assert call.query["type"] == "image"
    assert parse_multipart(call.headers["content-type"], call.body)[0][0] == "media"


def test_an_expired_media_id_is_refused_by_the_send_and_by_get_media(emulator, wx):
    uploaded = wx.upload_media("voice", samples.amr(2))
    emulator.state.advance(3 * 86400 + 1)
    openid = emulator.customer()

    with pytest.raises(WeChatInvalidArgument) as on_send:
        wx.send_voice_msg(openid, uploaded.media_id)
    with pytest.raises(WeChatInvalidArgument) as on_get:
        wx.get_media(uploaded.media_id)

    assert on_send.value.errcode == on_get.value.errcode == 40007


def test_it_reads_the_material_library_and_the_published_articles(emulator, wx):
    emulator.media("image", "logo", name="logo.png")
    emulator.media("news", "news1", title="春季新品")
    emulator.media("article", "art1", title="会员日")

    count = wx.get_material_count()
    images = wx.batchget_material("image")
    news = wx.batchget_material("news")
    published = wx.batchget_freepublish()

    assert (count.image_count, count.news_count, count.voice_count) == (1, 1, 0)
    assert [(i.media_id, i.name) for i in images.item] == [("logo", "logo.png")]
    assert news.item[0].content.news_item[0].title == "春季新品"
    assert published.item[0].article_id == "art1"
    assert published.item[0].content.news_item[0].content == ""  # no_content by default


def test_an_upload_over_a_stale_token_is_resent_whole(emulator, wx):
    wx.get_material_count()
    emulator.state.invalidate_tokens()
    video = samples.mp4(4096)

    uploaded = wx.upload_media("video", video)

    assert wx.get_media(uploaded.media_id).content == video
    assert len(calls_to(emulator, "/cgi-bin/media/upload")) == 2

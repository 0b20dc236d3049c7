"""Account management: add, update, delete, avatar upload, list, invitations."""

from __future__ import annotations

import pytest
import requests

from .util import TIMEOUT

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 200 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


def add(emulator, prefix_or_account: str, nickname: str = "客服") -> dict:
    account = (
        prefix_or_account if "@" in prefix_or_account else emulator.kf_account(prefix_or_account)
    )
    return emulator.post(
        "/customservice/kfaccount/add", {"kf_account": account, "nickname": nickname}
    )


def kf_list(emulator) -> list[dict]:
    return emulator.get("/cgi-bin/customservice/getkflist")["kf_list"]


def invite(emulator, account: str, invite_wx: str) -> dict:
    return emulator.post(
        "/customservice/kfaccount/inviteworker", {"kf_account": account, "invite_wx": invite_wx}
    )


def upload(emulator, account: str, files: dict) -> dict:
    return requests.post(
        f"{emulator.base_url}/customservice/kfaccount/uploadheadimg",
        params={"access_token": emulator.access_token(), "kf_account": account},
        files=files,
        timeout=TIMEOUT,
    ).json()


# ------------------------------------------------------------------ add / update / delete


def test_an_added_account_is_listed_with_a_string_kf_id(emulator):
    assert add(emulator, "mei", "小美") == {"errcode": 0, "errmsg": "ok"}
    assert kf_list(emulator) == [
        {"kf_account": "mei@test_oa", "kf_headimgurl": "", "kf_id": "1001", "kf_nick": "小美"}
    ]


def test_kf_ids_are_assigned_in_order(emulator):
    add(emulator, "a1")
    add(emulator, "a2")
    assert [a["kf_id"] for a in kf_list(emulator)] == ["1001", "1002"]


@pytest.mark.parametrize(
    "account",
    [
        "prefix12345@test_oa",  # 11 characters
        "bad-char@test_oa",
        "dot.ted@test_oa",
        "@test_oa",
        "name@other_oa",
        "name@test_oa@test_oa",
        "no_at_sign",
        "",
        "a b@test_oa",
        "中文@test_oa",
    ],
)
def test_a_malformed_account_is_refused_with_65404(emulator, account):
    body = {"kf_account": account, "nickname": "客服"}
    assert emulator.post("/customservice/kfaccount/add", body)["errcode"] == 65404


def test_a_ten_character_prefix_with_underscore_and_digits_is_fine(emulator):
    assert add(emulator, "Agent_0123")["errcode"] == 0


@pytest.mark.parametrize("nickname", ["", "   ", "x" * 17, "客" * 17, "tab\there", None, 12])
def test_a_bad_nickname_is_refused_with_65403(emulator, nickname):
    body = {"kf_account": emulator.kf_account("anna"), "nickname": nickname}
    assert emulator.post("/customservice/kfaccount/add", body)["errcode"] == 65403


def test_a_sixteen_character_chinese_nickname_is_fine(emulator):
    assert add(emulator, "anna", "客" * 16)["errcode"] == 0


def test_adding_an_existing_account_answers_65406(emulator):
    add(emulator, "anna")
    assert add(emulator, "anna")["errcode"] == 65406


def test_the_101st_account_answers_65405(emulator):
    for n in range(100):
        assert add(emulator, f"kf{n}")["errcode"] == 0
    assert add(emulator, "kf100")["errcode"] == 65405


def test_update_changes_the_nickname(emulator):
    add(emulator, "anna", "安娜")
    body = {"kf_account": "anna@test_oa", "nickname": "安娜（主管）"}
    assert emulator.post("/customservice/kfaccount/update", body)["errcode"] == 0
    assert kf_list(emulator)[0]["kf_nick"] == "安娜（主管）"


def test_update_of_an_unknown_account_answers_65401(emulator):
    body = {"kf_account": "ghost@test_oa", "nickname": "x"}
    assert emulator.post("/customservice/kfaccount/update", body)["errcode"] == 65401


def test_update_with_a_bad_nickname_answers_65403(emulator):
    add(emulator, "anna")
    body = {"kf_account": "anna@test_oa", "nickname": "x" * 17}
    assert emulator.post("/customservice/kfaccount/update", body)["errcode"] == 65403


def test_delete_by_get_accepts_a_percent_encoded_at_sign(emulator):
    add(emulator, "anna")
    assert emulator.get("/customservice/kfaccount/del", kf_account="anna@test_oa")["errcode"] == 0
    assert "kf_account=anna%40test_oa" in emulator.calls[-1].query_string
    assert kf_list(emulator) == []


def test_delete_by_get_accepts_a_raw_at_sign(emulator):
    add(emulator, "anna")
    url = f"{emulator.base_url}/customservice/kfaccount/del?access_token={emulator.access_token()}&kf_account=anna@test_oa"
    assert requests.get(url, timeout=TIMEOUT).json()["errcode"] == 0
    assert "kf_account=anna@test_oa" in emulator.calls[-1].query_string
    assert kf_list(emulator) == []


def test_delete_by_post_json(emulator):
    add(emulator, "anna")
    assert (
        emulator.post("/customservice/kfaccount/del", {"kf_account": "anna@test_oa"})["errcode"]
        == 0
    )
    assert kf_list(emulator) == []


def test_delete_by_post_with_the_account_in_the_query(emulator):
    add(emulator, "anna")
    response = requests.post(
        f"{emulator.base_url}/customservice/kfaccount/del",
        params={"access_token": emulator.access_token(), "kf_account": "anna@test_oa"},
        timeout=TIMEOUT,
    )
    assert response.json()["errcode"] == 0
    assert kf_list(emulator) == []


def test_deleting_an_unknown_account_answers_65401(emulator):
    assert (
        emulator.get("/customservice/kfaccount/del", kf_account="ghost@test_oa")["errcode"] == 65401
    )
    assert emulator.get("/customservice/kfaccount/del")["errcode"] == 65401


def test_deleting_an_agent_closes_its_sessions(emulator):
    agent = emulator.bound_agent("anna")
    openid = emulator.customer()
    emulator.state.agent_accept(kf_account=agent)
    emulator.get("/customservice/kfaccount/del", kf_account=agent)
    assert emulator.get("/customservice/kfsession/getsession", openid=openid) == {
        "createtime": 0,
        "kf_account": "",
    }
    assert emulator.state.records(opercode=1004)["records"][-1]["worker"] == agent


# ------------------------------------------------------------------ avatar


def test_an_uploaded_avatar_is_served_at_the_listed_url(emulator):
    add(emulator, "anna")
    assert (
        upload(emulator, "anna@test_oa", {"media": ("me.jpg", JPEG, "image/jpeg")})["errcode"] == 0
    )
    url = kf_list(emulator)[0]["kf_headimgurl"]
    assert url.startswith(emulator.base_url + "/")
    image = requests.get(url, timeout=TIMEOUT)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/jpeg"
    assert image.content == JPEG


def test_a_new_avatar_changes_the_url(emulator):
    add(emulator, "anna")
    upload(emulator, "anna@test_oa", {"media": ("a.jpg", JPEG, "application/octet-stream")})
    first = kf_list(emulator)[0]["kf_headimgurl"]
    upload(emulator, "anna@test_oa", {"media": ("b.jpg", JPEG + b"2", "application/octet-stream")})
    assert kf_list(emulator)[0]["kf_headimgurl"] != first


def test_an_upload_without_a_media_part_answers_41005(emulator):
    add(emulator, "anna")
    assert (
        upload(emulator, "anna@test_oa", {"file": ("me.jpg", JPEG, "image/jpeg")})["errcode"]
        == 41005
    )


def test_an_upload_that_is_not_multipart_answers_41005(emulator):
    add(emulator, "anna")
    response = requests.post(
        f"{emulator.base_url}/customservice/kfaccount/uploadheadimg",
        params={"access_token": emulator.access_token(), "kf_account": "anna@test_oa"},
        data=JPEG,
        timeout=TIMEOUT,
    )
    assert response.json()["errcode"] == 41005


def test_a_png_avatar_answers_40005(emulator):
    add(emulator, "anna")
    assert (
        upload(emulator, "anna@test_oa", {"media": ("me.png", PNG, "image/png")})["errcode"]
        == 40005
    )


def test_an_avatar_over_5_mb_answers_40009(emulator):
    add(emulator, "anna")
    big = JPEG + b"\x00" * (5 * 1024 * 1024)
    assert (
        upload(emulator, "anna@test_oa", {"media": ("big.jpg", big, "image/jpeg")})["errcode"]
        == 40009
    )


def test_an_avatar_for_an_unknown_account_answers_65401(emulator):
    assert (
        upload(emulator, "ghost@test_oa", {"media": ("me.jpg", JPEG, "image/jpeg")})["errcode"]
        == 65401
    )


def test_an_unknown_avatar_url_answers_404_json(emulator):
    response = requests.get(
        f"{emulator.base_url}/__emulator__/headimg/{emulator.appid}/999.jpg", timeout=TIMEOUT
    )
    assert response.status_code == 404
    assert response.json()["errcode"] == 404


# ------------------------------------------------------------------ invitations


def test_an_invitation_shows_as_waiting_with_its_expiry(emulator):
    add(emulator, "anna")
    before = emulator.state.now()
    assert invite(emulator, "anna@test_oa", "anna_wx_01")["errcode"] == 0
    entry = kf_list(emulator)[0]
    assert entry["invite_wx"] == "anna_wx_01"
    assert entry["invite_status"] == "waiting"
    assert isinstance(entry["invite_expire_time"], int)
    assert abs(entry["invite_expire_time"] - (before + 7 * 86400)) <= 2
    assert "kf_wx" not in entry


@pytest.mark.parametrize(
    "wx", ["12345abc", "abc", "a" * 21, "has space1", "中文微信号abc", "_underscore", ""]
)
def test_an_invalid_wechat_id_answers_65409(emulator, wx):
    add(emulator, "anna")
    assert invite(emulator, "anna@test_oa", wx)["errcode"] == 65409


def test_inviting_for_an_unknown_account_answers_65401(emulator):
    assert invite(emulator, "ghost@test_oa", "someone_01")["errcode"] == 65401


def test_inviting_for_a_bound_account_answers_65412(emulator):
    agent = emulator.bound_agent("anna")
    assert invite(emulator, agent, "someone_01")["errcode"] == 65412


def test_a_second_invitation_while_one_is_waiting_answers_65411(emulator):
    add(emulator, "anna")
    invite(emulator, "anna@test_oa", "anna_wx_01")
    assert invite(emulator, "anna@test_oa", "other_wx_01")["errcode"] == 65411


def test_inviting_someone_who_already_is_a_kf_here_answers_65407(emulator):
    emulator.state.add_agent(prefix="bob", kf_wx="bob_wechat")
    add(emulator, "anna")
    assert invite(emulator, "anna@test_oa", "bob_wechat")["errcode"] == 65407


def test_inviting_the_same_person_to_a_second_account_answers_65408(emulator):
    add(emulator, "anna")
    add(emulator, "anna2")
    invite(emulator, "anna@test_oa", "anna_wx_01")
    assert invite(emulator, "anna2@test_oa", "anna_wx_01")["errcode"] == 65408


def test_inviting_someone_bound_to_five_kf_accounts_answers_65410(emulator):
    for n in range(5):
        appid = f"wx_busy_oa_00000{n}"
        emulator.state.add_official_account(appid=appid, secret="s", wechat_id=f"busy{n}")
        emulator.state.add_agent(appid=appid, prefix="helper", kf_wx="popular_wx")
    add(emulator, "anna")
    assert invite(emulator, "anna@test_oa", "popular_wx")["errcode"] == 65410


def test_an_accepted_invitation_binds_the_account(emulator):
    add(emulator, "anna")
    invite(emulator, "anna@test_oa", "anna_wx_01")
    result = emulator.control("invite_respond", kf_account="anna@test_oa", action="accept")
    assert result["errcode"] == 0
    assert kf_list(emulator)[0] == {
        "kf_account": "anna@test_oa",
        "kf_headimgurl": "",
        "kf_id": "1001",
        "kf_nick": "客服",
        "kf_wx": "anna_wx_01",
    }
    assert invite(emulator, "anna@test_oa", "other_wx_01")["errcode"] == 65412


def test_a_rejected_invitation_is_shown_and_can_be_renewed(emulator):
    add(emulator, "anna")
    invite(emulator, "anna@test_oa", "anna_wx_01")
    emulator.state.invite_respond(kf_account="anna@test_oa", action="reject")
    assert kf_list(emulator)[0]["invite_status"] == "rejected"
    assert invite(emulator, "anna@test_oa", "anna_wx_02")["errcode"] == 0
    assert kf_list(emulator)[0]["invite_status"] == "waiting"


def test_an_invitation_expires_after_seven_days_and_can_be_renewed(emulator):
    add(emulator, "anna")
    invite(emulator, "anna@test_oa", "anna_wx_01")
    emulator.state.advance(7 * 86400 - 10)
    assert kf_list(emulator)[0]["invite_status"] == "waiting"
    emulator.state.advance(11)
    assert kf_list(emulator)[0]["invite_status"] == "expired"
    assert invite(emulator, "anna@test_oa", "anna_wx_01")["errcode"] == 0


def test_the_invitation_lifetime_is_configurable(emulator):
    emulator.state.configure(invite_lifetime=60)
    add(emulator, "anna")
    invite(emulator, "anna@test_oa", "anna_wx_01")
    emulator.state.advance(61)
    assert kf_list(emulator)[0]["invite_status"] == "expired"


def test_the_control_api_can_expire_an_invitation(emulator):
    add(emulator, "anna")
    invite(emulator, "anna@test_oa", "anna_wx_01")
    result = emulator.control("invite_respond", kf_account="anna@test_oa", action="expire")
    assert result["invite_status"] == "expired"
    assert kf_list(emulator)[0]["invite_expire_time"] <= emulator.state.now()


def test_responding_without_a_waiting_invitation_is_a_control_error(emulator):
    add(emulator, "anna")
    result = emulator.control("invite_respond", kf_account="anna@test_oa", action="accept")
    assert result["errcode"] == 400

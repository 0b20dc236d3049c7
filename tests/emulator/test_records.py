"""Chat records: getmsglist windows, msgid paging, validation, bulk generation."""

from __future__ import annotations

import json

import pytest
import requests

from kfadmin.emulator import Emulator
from kfadmin.emulator.api import ApiRequest
from kfadmin.emulator.server import serve_in_thread

from .util import TIMEOUT, utf8_json

MSGLIST = "/customservice/msgrecord/getmsglist"
T0 = 1_700_000_000


def msglist(emulator, start: int, end: int, msgid: int = 1, number: int = 10000) -> dict:
    return emulator.post(
        MSGLIST, {"starttime": start, "endtime": end, "msgid": msgid, "number": number}
    )


def fill(emulator, count: int, start: int = T0, end: int | None = None) -> None:
    emulator.state.generate_records(
        count=count, start=start, end=end if end is not None else start + 3600
    )


def test_records_in_the_window_come_back_ascending_with_the_next_msgid(emulator):
    fill(emulator, 30)
    page = msglist(emulator, T0, T0 + 3600)
    assert page["number"] == 30
    assert page["msgid"] == 31
    times = [r["time"] for r in page["recordlist"]]
    assert times == sorted(times)
    assert set(page["recordlist"][0]) == {"worker", "openid", "opercode", "text", "time"}


def test_paging_by_the_returned_msgid_ends_with_a_short_page(emulator):
    fill(emulator, 25)
    pages = []
    msgid = 1
    while True:
        page = msglist(emulator, T0, T0 + 3600, msgid=msgid, number=10)
        pages.append((page["number"], page["msgid"]))
        msgid = page["msgid"]
        if page["number"] < 10:
            break
    assert pages == [(10, 11), (10, 21), (5, 26)]
    assert msglist(emulator, T0, T0 + 3600, msgid=26, number=10) == {
        "recordlist": [],
        "number": 0,
        "msgid": 26,
    }


def test_paging_returns_every_record_exactly_once(emulator):
    fill(emulator, 95)
    everything = msglist(emulator, T0, T0 + 3600)["recordlist"]
    paged = []
    msgid = 1
    while True:
        page = msglist(emulator, T0, T0 + 3600, msgid=msgid, number=7)
        paged += page["recordlist"]
        msgid = page["msgid"]
        if page["number"] < 7:
            break
    assert paged == everything


def test_a_window_selects_by_time_and_msgid_continues_inside_it(emulator):
    emulator.state.generate_records(count=100, start=T0, end=T0 + 1000)
    emulator.state.generate_records(count=100, start=T0 + 5000, end=T0 + 6000, seed=2)
    second = msglist(emulator, T0 + 4000, T0 + 7000, msgid=1, number=10)
    assert second["number"] == 10
    assert second["msgid"] == 111  # ids 101..110: the second batch starts after the first hundred
    assert all(T0 + 5000 <= r["time"] <= T0 + 6000 for r in second["recordlist"])


def test_a_window_of_exactly_24_hours_is_allowed_and_longer_answers_65417(emulator):
    assert "recordlist" in msglist(emulator, T0, T0 + 86400)
    assert msglist(emulator, T0, T0 + 86401)["errcode"] == 65417


@pytest.mark.parametrize(
    "body",
    [
        {"starttime": T0 + 10, "endtime": T0, "msgid": 1, "number": 10},
        {"starttime": T0, "endtime": T0 + 10, "msgid": 0, "number": 10},
        {"starttime": T0, "endtime": T0 + 10, "msgid": -5, "number": 10},
        {"starttime": T0, "endtime": T0 + 10, "msgid": 1, "number": 0},
        {"starttime": T0, "endtime": T0 + 10, "msgid": 1, "number": 10001},
        {"endtime": T0 + 10, "msgid": 1, "number": 10},
        {"starttime": T0, "endtime": T0 + 10, "number": 10},
        {"starttime": T0, "endtime": T0 + 10, "msgid": 1},
        {"starttime": "soon", "endtime": T0 + 10, "msgid": 1, "number": 10},
        {"starttime": True, "endtime": T0 + 10, "msgid": 1, "number": 10},
    ],
)
def test_bad_query_parameters_answer_65416(emulator, body):
    assert emulator.post(MSGLIST, body)["errcode"] == 65416


def test_numbers_sent_as_strings_are_accepted(emulator):
    fill(emulator, 3)
    body = {"starttime": str(T0), "endtime": str(T0 + 3600), "msgid": "1", "number": "10"}
    assert emulator.post(MSGLIST, body)["number"] == 3


def test_record_ids_start_at_one_for_each_official_account(emulator):
    fill(emulator, 10)
    emulator.state.add_official_account(appid="wx_second_00000001", secret="s", wechat_id="second")
    emulator.state.generate_records(appid="wx_second_00000001", count=4, start=T0, end=T0 + 60)
    token = emulator.state.issue_token(appid="wx_second_00000001")["access_token"]
    page = requests.post(
        f"{emulator.base_url}{MSGLIST}",
        params={"access_token": token},
        data=utf8_json({"starttime": T0, "endtime": T0 + 3600, "msgid": 1, "number": 100}),
        timeout=TIMEOUT,
    ).json()
    assert page["number"] == 4
    assert page["msgid"] == 5


def test_a_whole_session_shows_up_in_the_records_in_order(emulator):
    anna = emulator.bound_agent("anna")
    start = int(emulator.state.now())
    openid = emulator.customer(text="我的订单怎么还没发货？")
    emulator.state.advance(30)
    emulator.state.agent_accept(kf_account=anna)
    emulator.state.advance(10)
    emulator.post(
        "/cgi-bin/message/custom/send",
        {"touser": openid, "msgtype": "text", "text": {"content": "马上帮您查"}},
    )
    emulator.post(
        "/cgi-bin/message/custom/send",
        {"touser": openid, "msgtype": "image", "image": {"media_id": emulator.media("image")}},
    )
    emulator.state.advance(10)
    emulator.customer(openid, "谢谢")
    emulator.post("/customservice/kfsession/close", {"kf_account": anna, "openid": openid})
    page = msglist(emulator, start, int(emulator.state.now()) + 1)
    assert [(r["opercode"], r["worker"], r["text"]) for r in page["recordlist"]] == [
        (2001, "", "我的订单怎么还没发货？"),
        (1000, "", ""),
        (1001, anna, ""),
        (2002, anna, "马上帮您查"),
        (2002, anna, "[image]"),
        (2003, anna, "谢谢"),
        (1004, anna, ""),
    ]


def test_generated_records_use_the_given_workers_and_openids(emulator):
    result = emulator.control(
        "generate_records",
        count=500,
        start=T0,
        end=T0 + 7200,
        workers=["w1@test_oa", "w2@test_oa"],
        openids=["oA", "oB"],
    )
    assert result["generated"] == 500 and result["total"] == 500
    rows = emulator.state.records(limit=1000)["records"]
    assert {r["worker"] for r in rows} <= {"", "w1@test_oa", "w2@test_oa"}
    assert {r["openid"] for r in rows} == {"oA", "oB"}
    assert all(T0 <= r["time"] <= T0 + 7200 for r in rows)
    assert {r["opercode"] for r in rows} >= {1000, 1001, 1004, 2001, 2002, 2003}


def test_generated_records_by_days_end_now(emulator):
    emulator.state.generate_records(count=200, days=2)
    now = emulator.state.now()
    rows = emulator.state.records(limit=1000)["records"]
    assert all(now - 2 * 86400 - 1 <= r["time"] <= now for r in rows)


def test_history_generated_behind_live_records_keeps_ids_in_time_order(emulator):
    openid = emulator.customer(text="现在的消息")
    emulator.state.generate_records(count=50, days=3, openids=["oHistory"])
    store = emulator.state.record_store()
    assert store.is_time_ordered()
    rows = emulator.state.records(limit=1000)["records"]
    assert [r["id"] for r in rows] == list(range(1, len(rows) + 1))
    live = [r for r in rows if r["openid"] == openid]
    assert live[0]["text"] == "现在的消息"
    assert live[0]["id"] > 40  # the live records moved behind the older history


@pytest.mark.parametrize(
    "payload",
    [
        {"count": -1},
        {"count": 10, "days": 0},
        {"count": 10, "start": T0},
        {"count": 10, "start": T0, "end": T0 - 1},
    ],
)
def test_bad_generate_requests_are_control_errors(emulator, payload):
    assert emulator.control("generate_records", **payload)["errcode"] == 400


def test_a_million_records_are_generated_ordered_and_served_in_pages_of_10000():
    emu = Emulator(clock=lambda: float(T0 + 86400))
    emu.add_official_account(appid="wxmillion", secret="s", wechat_id="million")
    result = emu.generate_records(count=1_000_000, days=1)
    assert result["generated"] == 1_000_000
    store = emu.record_store()
    assert len(store) == 1_000_000
    assert store.is_time_ordered()
    token = emu.issue_token()["access_token"]
    body = json.dumps(
        {"starttime": T0, "endtime": T0 + 86400, "msgid": 500_000, "number": 10000}
    ).encode()
    outcome = emu.process(ApiRequest("POST", MSGLIST, f"access_token={token}", body))
    assert outcome.payload is not None
    assert outcome.payload["number"] == 10000
    assert outcome.payload["msgid"] == 510_000
    times = [r["time"] for r in outcome.payload["recordlist"]]
    assert times == sorted(times)
    with serve_in_thread(emu) as handle:
        last = requests.post(
            f"{handle.base_url}{MSGLIST}",
            params={"access_token": token},
            data=json.dumps(
                {"starttime": T0, "endtime": T0 + 86400, "msgid": 995_001, "number": 10000}
            ),
            timeout=TIMEOUT,
        ).json()
    assert last["number"] == 5000
    assert last["msgid"] == 1_000_001

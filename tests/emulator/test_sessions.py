"""Online list, sessions, the waiting queue, and what agents and customers do."""

from __future__ import annotations

import pytest

EMPTY_SESSION = {"createtime": 0, "kf_account": ""}


def create(emulator, kf_account: str, openid: str) -> dict:
    return emulator.post(
        "/customservice/kfsession/create", {"kf_account": kf_account, "openid": openid}
    )


def close(emulator, kf_account: str, openid: str) -> dict:
    return emulator.post(
        "/customservice/kfsession/close", {"kf_account": kf_account, "openid": openid}
    )


def get_session(emulator, openid: str) -> dict:
    return emulator.get("/customservice/kfsession/getsession", openid=openid)


def wait_case(emulator) -> dict:
    return emulator.get("/customservice/kfsession/getwaitcase")


def opercodes(emulator, openid: str) -> list[tuple[int, str]]:
    return [(r["opercode"], r["worker"]) for r in emulator.state.records(openid=openid)["records"]]


# ------------------------------------------------------------------ online list


def test_the_online_list_shows_only_bound_online_agents_with_their_load(emulator):
    anna = emulator.bound_agent("anna")
    emulator.bound_agent("bob", online=False)
    emulator.state.add_agent(prefix="carl", bound=False, online=False)
    emulator.state.agent_accept(kf_account=anna, openid=emulator.customer())
    emulator.state.agent_accept(kf_account=anna, openid=emulator.customer())
    assert emulator.get("/cgi-bin/customservice/getonlinekflist") == {
        "kf_online_list": [{"kf_account": anna, "status": 1, "kf_id": "1001", "accepted_case": 2}]
    }


def test_an_agent_going_offline_leaves_the_online_list(emulator):
    anna = emulator.bound_agent("anna")
    emulator.control("agent_online", kf_account=anna, online=False)
    assert emulator.get("/cgi-bin/customservice/getonlinekflist") == {"kf_online_list": []}


def test_only_a_bound_agent_can_go_online(emulator):
    emulator.state.add_agent(prefix="carl", bound=False, online=False)
    result = emulator.control("agent_online", kf_account="carl@test_oa", online=True)
    assert result["errcode"] == 65402


# ------------------------------------------------------------------ create / close


def test_creating_a_session_takes_the_customer_out_of_the_queue(emulator):
    anna = emulator.bound_agent("anna")
    openid = emulator.customer()
    assert wait_case(emulator)["count"] == 1
    assert create(emulator, anna, openid) == {"errcode": 0, "errmsg": "ok"}
    assert wait_case(emulator) == {"count": 0, "waitcaselist": []}
    session = get_session(emulator, openid)
    assert session["kf_account"] == anna
    assert abs(session["createtime"] - emulator.state.now()) <= 2
    assert emulator.get("/customservice/kfsession/getsessionlist", kf_account=anna) == {
        "sessionlist": [{"createtime": session["createtime"], "openid": openid}]
    }
    assert opercodes(emulator, openid) == [(2001, ""), (1000, ""), (1002, anna)]


def test_a_session_can_be_created_for_a_customer_who_is_not_waiting(emulator):
    anna = emulator.bound_agent("anna")
    openid = emulator.state.add_customer()["openid"]
    assert create(emulator, anna, openid)["errcode"] == 0
    assert get_session(emulator, openid)["kf_account"] == anna


def test_creating_the_same_session_again_succeeds(emulator):
    anna = emulator.bound_agent("anna")
    openid = emulator.customer()
    create(emulator, anna, openid)
    assert create(emulator, anna, openid) == {"errcode": 0, "errmsg": "ok"}
    assert [code for code, _ in opercodes(emulator, openid)].count(1002) == 1


def test_recreating_an_existing_session_succeeds_even_when_the_agent_went_offline(emulator):
    anna = emulator.bound_agent("anna")
    openid = emulator.customer()
    create(emulator, anna, openid)
    emulator.state.agent_online(kf_account=anna, online=False)
    assert create(emulator, anna, openid) == {"errcode": 0, "errmsg": "ok"}


def test_creating_a_session_for_a_customer_served_by_another_agent_answers_65414(emulator):
    anna = emulator.bound_agent("anna")
    bob = emulator.bound_agent("bob")
    openid = emulator.customer()
    create(emulator, anna, openid)
    assert create(emulator, bob, openid)["errcode"] == 65414


def test_creating_a_session_with_an_unknown_account_answers_65401(emulator):
    assert create(emulator, "ghost@test_oa", emulator.customer())["errcode"] == 65401


def test_creating_a_session_with_an_unbound_account_answers_65402(emulator):
    emulator.state.add_agent(prefix="carl", bound=False, online=False)
    assert create(emulator, "carl@test_oa", emulator.customer())["errcode"] == 65402


def test_creating_a_session_with_an_offline_agent_answers_65415(emulator):
    bob = emulator.bound_agent("bob", online=False)
    assert create(emulator, bob, emulator.customer())["errcode"] == 65415


@pytest.mark.parametrize("openid", ["oUnknownButWellFormed0000000", "bad openid!", ""])
def test_creating_a_session_with_a_bad_openid_answers_40003(emulator, openid):
    anna = emulator.bound_agent("anna")
    assert create(emulator, anna, openid)["errcode"] == 40003


def test_closing_a_session(emulator):
    anna = emulator.bound_agent("anna")
    openid = emulator.customer()
    create(emulator, anna, openid)
    assert close(emulator, anna, openid) == {"errcode": 0, "errmsg": "ok"}
    assert get_session(emulator, openid) == EMPTY_SESSION
    assert emulator.get("/customservice/kfsession/getsessionlist", kf_account=anna) == {
        "sessionlist": []
    }
    assert opercodes(emulator, openid)[-1] == (1004, anna)


def test_closing_when_there_is_no_session_answers_65413(emulator):
    anna = emulator.bound_agent("anna")
    assert close(emulator, anna, emulator.customer())["errcode"] == 65413


def test_closing_another_agents_session_answers_65414(emulator):
    anna = emulator.bound_agent("anna")
    bob = emulator.bound_agent("bob")
    openid = emulator.customer()
    create(emulator, anna, openid)
    assert close(emulator, bob, openid)["errcode"] == 65414


def test_closing_with_unknown_or_unbound_accounts_and_bad_openids(emulator):
    anna = emulator.bound_agent("anna")
    emulator.state.add_agent(prefix="carl", bound=False, online=False)
    openid = emulator.customer()
    assert close(emulator, "ghost@test_oa", openid)["errcode"] == 65401
    assert close(emulator, "carl@test_oa", openid)["errcode"] == 65402
    assert close(emulator, anna, "nobody_here")["errcode"] == 40003


def test_an_offline_agent_can_still_close_a_session(emulator):
    anna = emulator.bound_agent("anna")
    openid = emulator.customer()
    create(emulator, anna, openid)
    emulator.state.agent_online(kf_account=anna, online=False)
    assert close(emulator, anna, openid)["errcode"] == 0


# ------------------------------------------------------------------ getsession / getsessionlist


def test_getsession_for_a_customer_without_a_session_is_empty(emulator):
    assert get_session(emulator, emulator.customer()) == EMPTY_SESSION


def test_getsession_for_an_unknown_openid_answers_40003(emulator):
    assert get_session(emulator, "oNobody")["errcode"] == 40003
    assert emulator.get("/customservice/kfsession/getsession")["errcode"] == 40003


def test_getsessionlist_errors(emulator):
    emulator.state.add_agent(prefix="carl", bound=False, online=False)
    assert (
        emulator.get("/customservice/kfsession/getsessionlist", kf_account="ghost@test_oa")[
            "errcode"
        ]
        == 65401
    )
    assert (
        emulator.get("/customservice/kfsession/getsessionlist", kf_account="carl@test_oa")[
            "errcode"
        ]
        == 65402
    )


def test_getsessionlist_is_ordered_by_creation(emulator):
    anna = emulator.bound_agent("anna")
    first, second = emulator.customer(), emulator.customer()
    create(emulator, anna, first)
    emulator.state.advance(5)
    create(emulator, anna, second)
    sessions = emulator.get("/customservice/kfsession/getsessionlist", kf_account=anna)[
        "sessionlist"
    ]
    assert [s["openid"] for s in sessions] == [first, second]
    assert sessions[1]["createtime"] - sessions[0]["createtime"] in (5, 6)


# ------------------------------------------------------------------ waiting queue


def test_the_queue_lists_customers_in_arrival_order_with_their_latest_message_time(emulator):
    first = emulator.customer("oFirst")
    emulator.state.advance(10)
    second = emulator.customer("oSecond")
    emulator.state.advance(10)
    emulator.customer(first, "还在吗？")  # writing again keeps the place in the queue
    queue = wait_case(emulator)
    assert queue["count"] == 2
    assert [e["openid"] for e in queue["waitcaselist"]] == [first, second]
    latest = {e["openid"]: e["latest_time"] for e in queue["waitcaselist"]}
    assert latest[first] - latest[second] in (10, 11)
    assert [code for code, _ in opercodes(emulator, first)] == [2001, 1000, 2001]


def test_the_queue_lists_at_most_100_but_counts_everyone(emulator):
    openids = [emulator.customer(f"oQueued{n:03d}") for n in range(150)]
    queue = wait_case(emulator)
    assert queue["count"] == 150
    assert len(queue["waitcaselist"]) == 100
    assert [e["openid"] for e in queue["waitcaselist"]] == openids[:100]


def test_a_customer_message_without_queueing_does_not_join_the_queue(emulator):
    emulator.state.customer_writes(openid="oQuiet", text="hello", queue=False)
    assert wait_case(emulator)["count"] == 0
    assert opercodes(emulator, "oQuiet") == [(2001, "")]


def test_an_agent_accepts_the_oldest_waiting_customer(emulator):
    anna = emulator.bound_agent("anna")
    first = emulator.customer()
    emulator.customer()
    result = emulator.control("agent_accept", kf_account=anna)
    assert result["openid"] == first
    assert get_session(emulator, first)["kf_account"] == anna
    assert wait_case(emulator)["count"] == 1
    assert opercodes(emulator, first)[-1] == (1001, anna)


def test_an_agent_can_accept_a_chosen_waiting_customer(emulator):
    anna = emulator.bound_agent("anna")
    emulator.customer()
    second = emulator.customer()
    assert emulator.control("agent_accept", kf_account=anna, openid=second)["openid"] == second


def test_accepting_needs_someone_waiting_and_an_online_agent(emulator):
    anna = emulator.bound_agent("anna")
    bob = emulator.bound_agent("bob", online=False)
    assert emulator.control("agent_accept", kf_account=anna)["errcode"] == 400
    emulator.customer()
    assert emulator.control("agent_accept", kf_account=bob)["errcode"] == 65415
    assert emulator.control("agent_accept", kf_account=anna, openid="oNotWaiting")["errcode"] == 400


def test_a_customer_in_a_session_writes_to_the_agent(emulator):
    anna = emulator.bound_agent("anna")
    openid = emulator.customer()
    emulator.state.agent_accept(kf_account=anna)
    result = emulator.control("customer_writes", openid=openid, text="我的快递到哪了？")
    assert result["kf_account"] == anna
    assert result["queued"] is False
    assert emulator.state.records(openid=openid)["records"][-1] == {
        "id": 4,
        "worker": anna,
        "openid": openid,
        "opercode": 2003,
        "text": "我的快递到哪了？",
        "time": int(emulator.state.now()),
    }
    assert wait_case(emulator)["count"] == 0


def test_customer_media_messages_are_recorded_as_placeholders(emulator):
    for msgtype in ("image", "voice", "video"):
        emulator.state.customer_writes(openid="oMedia", msgtype=msgtype)
    texts = [r["text"] for r in emulator.state.records(openid="oMedia", opercode=2001)["records"]]
    assert texts == ["[image]", "[voice]", "[video]"]


def test_a_transfer_moves_the_session_to_another_agent(emulator):
    anna = emulator.bound_agent("anna")
    bob = emulator.bound_agent("bob")
    openid = emulator.customer()
    emulator.state.agent_accept(kf_account=anna)
    result = emulator.control("agent_transfer", openid=openid, to_kf_account=bob)
    assert result == {
        "errcode": 0,
        "errmsg": "ok",
        "openid": openid,
        "kf_account": bob,
        "from_kf_account": anna,
    }
    assert get_session(emulator, openid)["kf_account"] == bob
    assert opercodes(emulator, openid)[-1] == (1003, bob)

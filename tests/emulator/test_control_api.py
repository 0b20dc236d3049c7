"""The /__emulator__/ control API and its Python twin."""

from __future__ import annotations

import inspect

import pytest
import requests

from kfadmin.emulator import Emulator
from kfadmin.emulator.server import CONTROL

from .util import TIMEOUT, post_raw, utf8_json


def test_every_control_endpoint_is_a_public_emulator_method():
    for name, endpoint in CONTROL.items():
        method = getattr(Emulator, endpoint.method, None)
        assert callable(method), name
        assert not endpoint.method.startswith("_")
        assert inspect.getdoc(method) or endpoint.method in {
            "faults",
            "clear_faults",
            "clear_calls",
        }, name


def test_the_index_lists_the_endpoints(emulator):
    response = requests.get(f"{emulator.base_url}/__emulator__/", timeout=TIMEOUT).json()
    assert "customer_writes" in response["endpoints"]
    assert (
        requests.get(f"{emulator.base_url}/__emulator__/health", timeout=TIMEOUT).json()["errcode"]
        == 0
    )


def test_an_unknown_control_endpoint_answers_404_json(emulator):
    response = requests.post(f"{emulator.base_url}/__emulator__/nope", json={}, timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.json()["errcode"] == 404


def test_an_unexpected_parameter_answers_400_json(emulator):
    response = requests.post(
        f"{emulator.base_url}/__emulator__/customer_writes",
        json={"text": "hi", "colour": "red"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "colour" in response.json()["errmsg"]


def test_a_control_body_that_is_not_json_answers_400(emulator):
    response = requests.post(
        f"{emulator.base_url}/__emulator__/customer_writes", data=b"{", timeout=TIMEOUT
    )
    assert response.status_code == 400
    assert response.json()["errcode"] == 400


def test_a_write_endpoint_refuses_get(emulator):
    response = requests.get(f"{emulator.base_url}/__emulator__/reset", timeout=TIMEOUT)
    assert response.status_code == 405


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH"])
def test_a_write_endpoint_refuses_other_methods_and_does_not_act(emulator, method):
    response = requests.request(method, f"{emulator.base_url}/__emulator__/reset", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["errcode"] == 400
    assert emulator.control("state", customers=False)["official_accounts"] != []


@pytest.mark.parametrize("name", ["", "health", "headimg/wx1234567890abcdef/1001.jpg"])
def test_read_only_endpoints_answer_only_get(emulator, name):
    response = requests.delete(f"{emulator.base_url}/__emulator__/{name}", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"


def test_a_read_endpoint_refuses_delete(emulator):
    response = requests.delete(f"{emulator.base_url}/__emulator__/state", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_a_second_official_account_can_be_created_over_http(emulator):
    created = emulator.control(
        "add_official_account",
        appid="wx_second_00000001",
        secret="second-secret",
        wechat_id="second_oa",
        original_id="gh_aaaaaaaaaaaa",
        token="tok",
        encoding_aes_key="B" * 43,
    )
    assert created["appid"] == "wx_second_00000001" and created["wechat_id"] == "second_oa"
    token = requests.get(
        f"{emulator.base_url}/cgi-bin/token",
        params={
            "grant_type": "client_credential",
            "appid": "wx_second_00000001",
            "secret": "second-secret",
        },
        timeout=TIMEOUT,
    ).json()
    assert token["expires_in"] == 7200
    assert (
        emulator.control(
            "add_official_account", appid="wx_second_00000001", secret="x", wechat_id="y"
        )["errcode"]
        == 400
    )


def test_with_two_official_accounts_control_calls_need_an_appid(emulator):
    emulator.state.add_official_account(
        appid="wx_second_00000001", secret="s", wechat_id="second_oa"
    )
    assert emulator.control("customer_writes", text="hi")["errcode"] == 400
    assert emulator.control("customer_writes", appid=emulator.appid, text="hi")["errcode"] == 0
    assert emulator.control("customer_writes", appid="wx_unknown", text="hi")["errcode"] == 40013


def test_a_bad_aes_key_is_refused(emulator):
    result = emulator.control(
        "add_official_account", appid="wx2", secret="s", wechat_id="oa2", encoding_aes_key="short"
    )
    assert result["errcode"] == 400


def test_the_call_log_keeps_what_the_client_sent(emulator):
    token = emulator.access_token()
    body = utf8_json({"kf_account": "anna@test_oa", "nickname": "安娜"})
    post_raw(
        emulator.base_url,
        "/customservice/kfaccount/add",
        token,
        body,
        headers={"Content-Type": "application/json", "X-Trace": "abc"},
    )
    requests.get(
        f"{emulator.base_url}/customservice/kfsession/getsessionlist",
        params={"access_token": token, "kf_account": "anna@test_oa"},
        timeout=TIMEOUT,
    )
    add, listing = emulator.calls
    assert add.method == "POST"
    assert add.path == "/customservice/kfaccount/add"
    assert add.query == {"access_token": token}
    assert add.body == body
    assert add.json == {"kf_account": "anna@test_oa", "nickname": "安娜"}
    assert add.headers["content-type"] == "application/json"
    assert add.headers["x-trace"] == "abc"
    assert listing.query == {"access_token": token, "kf_account": "anna@test_oa"}
    assert "kf_account=anna%40test_oa" in listing.query_string
    over_http = requests.get(
        f"{emulator.base_url}/__emulator__/calls?limit=2", timeout=TIMEOUT
    ).json()["calls"]
    assert [c["path"] for c in over_http] == [add.path, listing.path]
    assert over_http[0]["body"] == body.decode("utf-8")
    assert over_http[0]["json"]["nickname"] == "安娜"


def test_control_requests_are_not_logged_and_the_log_can_be_cleared(emulator):
    emulator.control("state")
    assert emulator.calls == []
    emulator.get("/cgi-bin/customservice/getkflist")
    assert len(emulator.calls) == 1
    assert emulator.control("clear_calls")["cleared"] == 1
    assert emulator.calls == []


def test_the_call_log_keeps_only_the_last_n(emulator):
    emulator.state.configure(calls_limit=3)
    for _ in range(5):
        emulator.get("/cgi-bin/customservice/getkflist")
    assert [c.seq for c in emulator.calls] == [3, 4, 5]
    assert len(emulator.state.calls(path_prefix="/cgi-bin/customservice/", limit=2)) == 2


def test_state_and_records_dumps(emulator):
    anna = emulator.bound_agent("anna")
    openid = emulator.customer(text="在吗")
    state = requests.get(f"{emulator.base_url}/__emulator__/state", timeout=TIMEOUT).json()
    oa = state["official_accounts"][0]
    assert oa["appid"] == emulator.appid
    assert oa["accounts"][0]["kf_account"] == anna
    assert oa["queue"][0]["openid"] == openid
    assert oa["customers"][0]["remaining"] == 5
    lean = requests.get(
        f"{emulator.base_url}/__emulator__/state?customers=false", timeout=TIMEOUT
    ).json()
    assert "customers" not in lean["official_accounts"][0]
    records = emulator.control("records", openid=openid)
    assert [r["opercode"] for r in records["records"]] == [2001, 1000]
    assert records["total"] == 2
    customer = emulator.control("customer", openid=openid)
    assert customer["window_open"] is True and customer["remaining"] == 5


def test_advance_moves_the_emulator_clock(emulator):
    before = emulator.state.now()
    after = emulator.control("advance", seconds=3600)["now"]
    assert 3600 <= after - before < 3602
    assert emulator.control("advance", seconds=-1)["errcode"] == 400


def test_configure_reports_and_changes_settings(emulator):
    assert emulator.control("configure")["token_overlap"] == 300
    changed = emulator.control("configure", token_overlap=10, invite_lifetime=3600)
    assert (changed["token_overlap"], changed["invite_lifetime"]) == (10, 3600)
    assert emulator.control("configure", token_overlap=-1)["errcode"] == 400


def test_reset_forgets_everything(emulator):
    emulator.bound_agent("anna")
    emulator.state.add_fault(kind="errcode")
    emulator.state.advance(1000)
    emulator.get("/cgi-bin/customservice/getkflist")
    assert emulator.control("reset")["errcode"] == 0
    state = emulator.state.state()
    assert state["official_accounts"] == [] and state["faults"] == []
    assert emulator.calls == []
    assert state["settings"]["token_overlap"] == 300


def test_add_agent_can_create_unbound_or_offline_agents(emulator):
    unbound = emulator.control(
        "add_agent", prefix="newbie", nickname="新人", bound=False, online=False
    )
    assert "kf_wx" not in unbound and unbound["online"] is False
    offline = emulator.control("add_agent", prefix="bob", kf_wx="bob_wechat", online=False)
    assert offline["kf_wx"] == "bob_wechat" and offline["online"] is False
    assert emulator.control("add_agent", prefix="x", bound=False, online=True)["errcode"] == 65402
    assert emulator.control("add_agent", prefix="bob")["errcode"] == 65406


def test_issue_token_gives_a_working_token_without_http(emulator):
    issued = emulator.control("issue_token", kind="classic")
    assert issued["expires_in"] == 7200
    assert emulator.get(
        "/cgi-bin/customservice/getkflist", access_token=issued["access_token"]
    ) == {"kf_list": []}

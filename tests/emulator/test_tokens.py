"""Access tokens: classic and stable endpoints, expiry, overlap, invalidation."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from kfadmin.emulator import Emulator

from .util import TIMEOUT


def classic(emulator: Any, **overrides: str) -> dict[str, Any]:
    params = {"grant_type": "client_credential", "appid": emulator.appid, "secret": emulator.secret}
    params.update(overrides)
    return requests.get(f"{emulator.base_url}/cgi-bin/token", params=params, timeout=TIMEOUT).json()


def stable(emulator: Any, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "grant_type": "client_credential",
        "appid": emulator.appid,
        "secret": emulator.secret,
        "force_refresh": False,
    }
    body.update(overrides)
    return requests.post(
        f"{emulator.base_url}/cgi-bin/stable_token", json=body, timeout=TIMEOUT
    ).json()


def kf_list(emulator: Any, token: str) -> dict[str, Any]:
    return requests.get(
        f"{emulator.base_url}/cgi-bin/customservice/getkflist",
        params={"access_token": token},
        timeout=TIMEOUT,
    ).json()


def test_classic_token_is_issued_for_7200_seconds(emulator):
    result = classic(emulator)
    assert result["expires_in"] == 7200
    assert len(result["access_token"]) >= 64
    assert kf_list(emulator, result["access_token"]) == {"kf_list": []}


def test_classic_token_request_is_sent_as_the_call_log_shows(emulator):
    classic(emulator)
    call = emulator.calls[-1]
    assert call.method == "GET"
    assert call.path == "/cgi-bin/token"
    assert call.query == {
        "grant_type": "client_credential",
        "appid": emulator.appid,
        "secret": emulator.secret,
    }


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"grant_type": "password"}, 40002),
        ({"appid": ""}, 41002),
        ({"secret": ""}, 41004),
        ({"appid": "wx0000000000000000"}, 40013),
        ({"secret": "wrong"}, 40001),
    ],
)
def test_classic_token_errors(emulator, overrides, errcode):
    result = classic(emulator, **overrides)
    assert result["errcode"] == errcode
    assert "rid:" in result["errmsg"]


def test_a_new_classic_token_keeps_the_previous_one_valid_for_the_overlap(emulator):
    first = classic(emulator)["access_token"]
    second = classic(emulator)["access_token"]
    assert first != second
    emulator.state.advance(299)
    assert "kf_list" in kf_list(emulator, first)
    emulator.state.advance(2)
    assert kf_list(emulator, first)["errcode"] == 40001
    assert "kf_list" in kf_list(emulator, second)


def test_the_classic_overlap_is_configurable(emulator):
    emulator.state.configure(token_overlap=0)
    first = classic(emulator)["access_token"]
    classic(emulator)
    assert kf_list(emulator, first)["errcode"] == 40001


def test_a_classic_token_expires_after_7200_seconds(emulator):
    token = classic(emulator)["access_token"]
    emulator.state.advance(7199)
    assert "kf_list" in kf_list(emulator, token)
    emulator.state.advance(2)
    assert kf_list(emulator, token)["errcode"] == 42001


def test_the_stable_token_is_the_same_while_valid_and_reports_the_remaining_lifetime(emulator):
    first = stable(emulator)
    assert 7199 <= first["expires_in"] <= 7200
    emulator.state.advance(1000)
    second = stable(emulator)
    assert second["access_token"] == first["access_token"]
    assert 6198 <= second["expires_in"] <= 6200


def test_the_stable_token_rotates_in_its_last_five_minutes_and_the_old_one_lives_on(emulator):
    first = stable(emulator)["access_token"]
    emulator.state.advance(7200 - 200)
    second = stable(emulator)
    assert second["access_token"] != first
    assert second["expires_in"] >= 7199
    assert "kf_list" in kf_list(emulator, first)
    emulator.state.advance(201)
    assert kf_list(emulator, first)["errcode"] == 42001
    assert "kf_list" in kf_list(emulator, second["access_token"])


def test_force_refresh_rotates_the_stable_token_and_kills_the_old_one(emulator):
    first = stable(emulator)["access_token"]
    second = stable(emulator, force_refresh=True)["access_token"]
    assert second != first
    assert kf_list(emulator, first)["errcode"] == 40001
    assert "kf_list" in kf_list(emulator, second)


def test_a_second_force_refresh_within_30_seconds_does_not_refresh(emulator):
    first = stable(emulator, force_refresh=True)
    emulator.control("advance", seconds=29)
    again = stable(emulator, force_refresh=True)
    assert again["access_token"] == first["access_token"]
    assert "kf_list" in kf_list(emulator, first["access_token"])
    emulator.control("advance", seconds=1)
    third = stable(emulator, force_refresh=True)
    assert third["access_token"] != first["access_token"]
    assert kf_list(emulator, first["access_token"])["errcode"] == 40001


def test_force_refresh_rotates_at_most_20_times_a_day_then_answers_45009(emulator):
    # Start just after midnight in China (UTC+8), WeChat's quota day.
    now = requests.get(f"{emulator.base_url}/__emulator__/health", timeout=TIMEOUT).json()["now"]
    emulator.control("advance", seconds=86400 - (now + 8 * 3600) % 86400 + 1)
    tokens = set()
    for _ in range(20):
        tokens.add(stable(emulator, force_refresh=True)["access_token"])
        emulator.control("advance", seconds=30)
    assert len(tokens) == 20
    refused = stable(emulator, force_refresh=True)
    assert refused["errcode"] == 45009
    current = stable(emulator)["access_token"]
    assert current in tokens and "kf_list" in kf_list(emulator, current)
    emulator.control("advance", seconds=86400 - 20 * 30)
    assert stable(emulator, force_refresh=True)["access_token"] not in tokens


def test_stable_and_classic_tokens_do_not_invalidate_each_other(emulator):
    emulator.state.configure(token_overlap=0)
    stable_token = stable(emulator)["access_token"]
    classic_token = classic(emulator)["access_token"]
    classic(emulator)
    assert "kf_list" in kf_list(emulator, stable_token)
    assert kf_list(emulator, classic_token)["errcode"] == 40001


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"grant_type": "x"}, 40002),
        ({"appid": ""}, 41002),
        ({"secret": ""}, 41004),
        ({"appid": "wx0000000000000000"}, 40013),
        ({"secret": "wrong"}, 40125),
    ],
)
def test_stable_token_errors(emulator, overrides, errcode):
    assert stable(emulator, **overrides)["errcode"] == errcode


def test_stable_token_by_get_answers_43002(emulator):
    response = requests.get(
        f"{emulator.base_url}/cgi-bin/stable_token",
        params={
            "grant_type": "client_credential",
            "appid": emulator.appid,
            "secret": emulator.secret,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.json()["errcode"] == 43002


def test_stable_token_without_a_body_answers_44002(emulator):
    response = requests.post(f"{emulator.base_url}/cgi-bin/stable_token", timeout=TIMEOUT)
    assert response.json()["errcode"] == 44002


@pytest.mark.parametrize(
    ("token", "errcode"),
    [
        (None, 41001),
        ("", 41001),
        ("ACCESS_TOKEN", 40014),
        ("A" * 128, 40001),
    ],
)
def test_missing_or_unknown_tokens_are_refused(emulator, token, errcode):
    params = {} if token is None else {"access_token": token}
    result = requests.get(
        f"{emulator.base_url}/cgi-bin/customservice/getkflist", params=params, timeout=TIMEOUT
    ).json()
    assert result["errcode"] == errcode


def test_invalidate_tokens_makes_every_token_fail_with_40001(emulator):
    classic_token = classic(emulator)["access_token"]
    stable_token = stable(emulator)["access_token"]
    result = emulator.control("invalidate_tokens", appid=emulator.appid)
    assert result["invalidated"] == 2
    assert kf_list(emulator, classic_token)["errcode"] == 40001
    assert kf_list(emulator, stable_token)["errcode"] == 40001
    fresh = stable(emulator)["access_token"]
    assert fresh != stable_token
    assert "kf_list" in kf_list(emulator, fresh)


def test_a_token_belongs_to_its_own_official_account(emulator):
    emulator.state.add_official_account(
        appid="wx_other_oa_000001", secret="other", wechat_id="other_oa"
    )
    emulator.state.add_agent(appid="wx_other_oa_000001", prefix="someone")
    other = classic(emulator, appid="wx_other_oa_000001", secret="other")["access_token"]
    mine = classic(emulator)["access_token"]
    assert [a["kf_account"] for a in kf_list(emulator, other)["kf_list"]] == ["someone@other_oa"]
    assert kf_list(emulator, mine)["kf_list"] == []


def test_tokens_use_the_injected_clock():
    now = [1_700_000_000.0]
    emu = Emulator(clock=lambda: now[0])
    emu.add_official_account(appid="wxclock", secret="s", wechat_id="clock_oa")
    token = emu.issue_token(kind="classic")
    assert token["expires_in"] == 7200
    state = emu.state()["official_accounts"][0]["tokens"][0]
    assert state["expires_at"] == 1_700_000_000.0 + 7200
    now[0] += 7201
    from kfadmin.emulator.api import ApiRequest

    outcome = emu.process(
        ApiRequest(
            "GET", "/cgi-bin/customservice/getkflist", f"access_token={token['access_token']}"
        )
    )
    assert outcome.payload is not None and outcome.payload["errcode"] == 42001

"""Injected faults: errcodes, HTTP errors, slow answers, dropped connections, token loss."""

from __future__ import annotations

import time

import pytest
import requests

from .util import TIMEOUT

KFLIST = "/cgi-bin/customservice/getkflist"


def kf_list(emulator, token: str) -> requests.Response:
    return requests.get(
        f"{emulator.base_url}{KFLIST}", params={"access_token": token}, timeout=TIMEOUT
    )


def test_an_errcode_fault_hits_the_next_n_calls_only(emulator):
    token = emulator.access_token()
    answer = emulator.control("faults", kind="errcode", errcode=-1, next=2)
    assert answer["errcode"] == 0
    assert answer["fault"]["kind"] == "errcode" and answer["fault"]["next"] == 2
    assert kf_list(emulator, token).json()["errcode"] == -1
    assert kf_list(emulator, token).json()["errcode"] == -1
    assert kf_list(emulator, token).json() == {"kf_list": []}
    assert emulator.state.faults() == []


def test_an_errcode_fault_can_carry_any_code(emulator):
    token = emulator.access_token()
    emulator.state.add_fault(kind="errcode", errcode=45009, next=1)
    result = kf_list(emulator, token).json()
    assert result["errcode"] == 45009
    assert result["errmsg"].startswith("reach max api daily quota limit rid: ")


def test_a_fault_can_be_limited_to_a_path_prefix(emulator):
    token = emulator.access_token()
    emulator.state.add_fault(kind="errcode", path_prefix="/customservice/kfsession/")
    assert kf_list(emulator, token).json() == {"kf_list": []}
    assert emulator.get("/customservice/kfsession/getwaitcase", access_token=token)["errcode"] == -1


def test_a_rate_fault_fires_about_as_often_as_asked(emulator):
    token = emulator.access_token()
    emulator.state.add_fault(kind="errcode", rate=0.5)
    with requests.Session() as session:
        failures = sum(
            "errcode"
            in session.get(f"{emulator.base_url}{KFLIST}", params={"access_token": token}).json()
            for _ in range(200)
        )
    assert 60 <= failures <= 140


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 20)])
def test_rate_zero_never_fires_and_rate_one_always_fires(emulator, rate, expected):
    token = emulator.access_token()
    emulator.state.add_fault(kind="errcode", rate=rate)
    failures = sum("errcode" in kf_list(emulator, token).json() for _ in range(20))
    assert failures == expected


@pytest.mark.parametrize("status", [500, 502])
def test_an_http_fault_answers_with_that_status(emulator, status):
    token = emulator.access_token()
    emulator.state.add_fault(kind="http", status=status, next=1)
    response = kf_list(emulator, token)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/html"
    assert kf_list(emulator, token).status_code == 200


def test_a_slow_fault_delays_the_answer_then_answers_normally(emulator):
    token = emulator.access_token()
    emulator.state.add_fault(kind="slow", delay=0.4, next=1)
    began = time.monotonic()
    response = kf_list(emulator, token)
    assert time.monotonic() - began >= 0.4
    assert response.json() == {"kf_list": []}


def test_a_slow_fault_trips_a_client_timeout(emulator):
    token = emulator.access_token()
    emulator.state.add_fault(kind="slow", delay=1.0, next=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{emulator.base_url}{KFLIST}", params={"access_token": token}, timeout=0.3)


def test_a_drop_fault_closes_the_connection_without_an_answer(emulator):
    token = emulator.access_token()
    emulator.state.add_fault(kind="drop", next=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        kf_list(emulator, token)
    assert kf_list(emulator, token).json() == {"kf_list": []}


def test_a_dropped_post_is_still_logged(emulator):
    emulator.state.add_fault(kind="drop", next=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        emulator.post("/cgi-bin/message/custom/send", {"touser": "x"})
    assert emulator.calls[-1].json == {"touser": "x"}


def test_an_invalidate_token_fault_kills_the_token_used(emulator):
    token = emulator.access_token()
    emulator.state.add_fault(kind="invalidate_token", next=1)
    assert kf_list(emulator, token).json()["errcode"] == 40001
    assert kf_list(emulator, token).json()["errcode"] == 40001
    fresh = emulator.access_token()
    assert fresh != token
    assert kf_list(emulator, fresh).json() == {"kf_list": []}


def test_an_invalidate_token_fault_skips_token_fetches(emulator):
    emulator.state.add_fault(kind="invalidate_token", next=1)
    response = requests.get(
        f"{emulator.base_url}/cgi-bin/token",
        params={
            "grant_type": "client_credential",
            "appid": emulator.appid,
            "secret": emulator.secret,
        },
        timeout=TIMEOUT,
    ).json()
    assert kf_list(emulator, response["access_token"]).json()["errcode"] == 40001


def test_an_errcode_fault_can_hit_the_token_endpoint(emulator):
    emulator.state.add_fault(kind="errcode", path_prefix="/cgi-bin/stable_token", next=1)
    body = {"grant_type": "client_credential", "appid": emulator.appid, "secret": emulator.secret}
    assert (
        requests.post(
            f"{emulator.base_url}/cgi-bin/stable_token", json=body, timeout=TIMEOUT
        ).json()["errcode"]
        == -1
    )


def test_clearing_faults_restores_normal_service(emulator):
    token = emulator.access_token()
    emulator.state.add_fault(kind="errcode")
    emulator.state.add_fault(kind="http", status=502)
    assert emulator.control("clear_faults")["cleared"] == 2
    assert kf_list(emulator, token).json() == {"kf_list": []}


def test_faults_never_touch_the_control_api(emulator):
    emulator.state.add_fault(kind="drop")
    assert emulator.control("state")["errcode"] == 0


def test_faults_are_listed(emulator):
    emulator.control("faults", kind="slow", delay=0.1, path_prefix="/cgi-bin/")
    listed = requests.get(f"{emulator.base_url}/__emulator__/list_faults", timeout=TIMEOUT).json()[
        "faults"
    ]
    assert [(f["kind"], f["delay"], f["path_prefix"]) for f in listed] == [
        ("slow", 0.1, "/cgi-bin/")
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {"kind": "boom"},
        {"kind": "errcode", "rate": 2},
        {"kind": "errcode", "next": 0},
        {"kind": "http", "status": 200},
    ],
)
def test_bad_fault_requests_are_control_errors(emulator, payload):
    assert emulator.control("faults", **payload)["errcode"] == 400

"""Wire conventions: paths, bodies, error shape, and robustness against bad requests."""

from __future__ import annotations

import http.client
import json
import re
import socket
from urllib.parse import urlsplit

import pytest
import requests

from .util import TIMEOUT, post_raw, utf8_json

RID_RE = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")


def raw_exchange(base_url: str, payload: bytes) -> bytes:
    """Send bytes on a fresh socket and read the whole answer."""
    split = urlsplit(base_url)
    with socket.create_connection((split.hostname, split.port), timeout=10) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_an_unknown_path_answers_40066_with_http_200(emulator):
    response = requests.get(f"{emulator.base_url}/cgi-bin/nothing", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["errcode"] == 40066
    assert RID_RE.search(response.json()["errmsg"])


def test_the_cgi_bin_prefix_mistake_answers_40066(emulator):
    token = emulator.access_token()
    body = utf8_json({"starttime": 1, "endtime": 2, "msgid": 1, "number": 10})
    result = post_raw(
        emulator.base_url, "/cgi-bin/customservice/msgrecord/getmsglist", token, body
    ).json()
    assert result["errcode"] == 40066


def test_responses_are_raw_utf8_json_with_wechats_content_type(emulator):
    emulator.bound_agent("mei", nickname="小美")
    response = requests.get(
        f"{emulator.base_url}/cgi-bin/customservice/getkflist",
        params={"access_token": emulator.access_token()},
        timeout=TIMEOUT,
    )
    assert response.headers["Content-Type"] == "application/json; encoding=utf-8"
    assert "小美".encode() in response.content
    assert b"\\u" not in response.content


def test_malformed_json_answers_47001(emulator):
    result = post_raw(
        emulator.base_url, "/customservice/kfaccount/add", emulator.access_token(), b"{nope"
    ).json()
    assert result["errcode"] == 47001


def test_a_json_array_body_answers_47001(emulator):
    result = post_raw(
        emulator.base_url, "/customservice/kfaccount/add", emulator.access_token(), b"[]"
    ).json()
    assert result["errcode"] == 47001


def test_a_body_that_is_not_utf8_answers_47001(emulator):
    result = post_raw(
        emulator.base_url,
        "/customservice/kfaccount/add",
        emulator.access_token(),
        b'{"nickname":"\xff"}',
    ).json()
    assert result["errcode"] == 47001


NESTED = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


class OneConnection:
    """http.client on one socket; ``same_socket`` tells whether it was ever reopened."""

    def __init__(self, base_url: str) -> None:
        split = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(split.hostname, split.port, timeout=TIMEOUT)
        self.conn.connect()
        self.sock = self.conn.sock

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        self.conn.request(method, path, body=body)
        response = self.conn.getresponse()
        assert not response.will_close, "the server asked to close the connection"
        return response.status, json.loads(response.read())

    @property
    def same_socket(self) -> bool:
        return self.conn.sock is self.sock

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def one_connection(emulator):
    connection = OneConnection(emulator.base_url)
    yield connection
    connection.close()


def test_absurdly_nested_json_is_a_format_error_and_keeps_the_connection(
    emulator, one_connection
):
    token = emulator.access_token()
    status, answer = one_connection.request(
        "POST", f"/customservice/kfaccount/add?access_token={token}", NESTED
    )
    assert (status, answer["errcode"]) == (200, 47001)
    status, answer = one_connection.request(
        "GET", f"/cgi-bin/customservice/getkflist?access_token={token}"
    )
    assert answer == {"kf_list": []}
    assert one_connection.same_socket


def test_nested_json_just_within_the_depth_limit_is_parsed(emulator):
    depth = 500
    head = '{"kf_account":"deep@test_oa","nickname":"深","x":'.encode()
    body = head + b"[" * depth + b"]" * depth + b"}"
    result = post_raw(
        emulator.base_url, "/customservice/kfaccount/add", emulator.access_token(), body
    ).json()
    assert result == {"errcode": 0, "errmsg": "ok"}


def test_nested_json_on_the_token_endpoint_is_a_format_error(emulator, one_connection):
    status, answer = one_connection.request("POST", "/cgi-bin/stable_token", NESTED)
    assert answer["errcode"] == 47001
    status, answer = one_connection.request("GET", "/__emulator__/health")
    assert answer["errcode"] == 0
    assert one_connection.same_socket


def test_nested_json_is_logged_without_a_parsed_body(emulator):
    post_raw(emulator.base_url, "/customservice/kfaccount/add", emulator.access_token(), NESTED)
    calls = requests.get(
        f"{emulator.base_url}/__emulator__/calls", params={"limit": 1}, timeout=TIMEOUT
    ).json()["calls"]
    assert calls[-1]["json"] is None and calls[-1]["body_size"] == len(NESTED)


def test_nested_json_to_the_control_api_is_a_400_and_keeps_the_connection(
    emulator, one_connection
):
    status, answer = one_connection.request("POST", "/__emulator__/add_customer", NESTED)
    assert (status, answer["errcode"]) == (400, 400)
    status, answer = one_connection.request("GET", "/__emulator__/health")
    assert answer["errcode"] == 0
    assert one_connection.same_socket


def test_an_internal_error_answers_minus_1_and_keeps_the_connection(
    emulator, one_connection, monkeypatch
):
    def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(emulator.state, "process", broken)
    status, answer = one_connection.request("GET", "/cgi-bin/customservice/getkflist")
    assert (status, answer["errcode"]) == (200, -1)
    status, answer = one_connection.request("GET", "/__emulator__/health")
    assert answer["errcode"] == 0
    assert one_connection.same_socket


def test_an_unreadable_body_closes_the_connection_and_says_so(emulator):
    answer = raw_exchange(
        emulator.base_url,
        b"POST /customservice/kfaccount/add HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nConnection: close" in head
    assert json.loads(body)["errcode"] == 47001


def test_an_empty_post_body_answers_44002(emulator):
    result = post_raw(
        emulator.base_url, "/customservice/kfaccount/add", emulator.access_token(), b""
    ).json()
    assert result["errcode"] == 44002


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/json"]
)
def test_the_body_is_parsed_as_json_whatever_the_content_type(emulator, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    body = utf8_json({"kf_account": emulator.kf_account("anna"), "nickname": "安娜"})
    result = post_raw(
        emulator.base_url,
        "/customservice/kfaccount/add",
        emulator.access_token(),
        body,
        headers=headers,
    ).json()
    assert result == {"errcode": 0, "errmsg": "ok"}


def test_unknown_extra_keys_are_ignored(emulator):
    body = {
        "kf_account": emulator.kf_account("anna"),
        "nickname": "安娜",
        "password": "e10adc3949ba59abbe56e057f20f883e",
    }
    assert emulator.post("/customservice/kfaccount/add", body)["errcode"] == 0


def test_unicode_escapes_of_non_ascii_text_are_refused_with_40033(emulator):
    # requests' json= escapes non-ASCII (ensure_ascii=True): the pitfall WeChat reports as 40033.
    response = requests.post(
        f"{emulator.base_url}/customservice/kfaccount/add",
        params={"access_token": emulator.access_token()},
        json={"kf_account": emulator.kf_account("anna"), "nickname": "安娜"},
        timeout=TIMEOUT,
    )
    assert response.json()["errcode"] == 40033


def test_an_escaped_backslash_before_u_is_not_mistaken_for_an_escape(emulator):
    body = json.dumps({"kf_account": emulator.kf_account("anna"), "nickname": "a\\u4e2d"}).encode()
    assert b"\\\\u4e2d" in body
    result = post_raw(
        emulator.base_url, "/customservice/kfaccount/add", emulator.access_token(), body
    ).json()
    assert result["errcode"] == 0


def test_ascii_escapes_are_accepted(emulator):
    body = b'{"kf_account": "anna@test_oa", "nickname": "\\u0041nna"}'
    result = post_raw(
        emulator.base_url, "/customservice/kfaccount/add", emulator.access_token(), body
    ).json()
    assert result["errcode"] == 0


def test_the_unicode_escape_rule_can_be_switched_off(emulator):
    emulator.state.configure(reject_unicode_escapes=False)
    response = requests.post(
        f"{emulator.base_url}/customservice/kfaccount/add",
        params={"access_token": emulator.access_token()},
        json={"kf_account": emulator.kf_account("anna"), "nickname": "安娜"},
        timeout=TIMEOUT,
    )
    assert response.json()["errcode"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/customservice/kfaccount/add",
        "/customservice/kfaccount/update",
        "/customservice/kfaccount/uploadheadimg",
        "/customservice/kfaccount/inviteworker",
        "/customservice/kfsession/create",
        "/customservice/kfsession/close",
        "/customservice/msgrecord/getmsglist",
        "/cgi-bin/message/custom/send",
        "/cgi-bin/message/custom/typing",
    ],
)
def test_get_on_a_post_only_endpoint_answers_43002(emulator, path):
    assert emulator.get(path)["errcode"] == 43002


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("/customservice/getkflist", "/cgi-bin/customservice/getkflist"),
        ("/customservice/getonlinekflist", "/cgi-bin/customservice/getonlinekflist"),
    ],
)
def test_the_short_list_paths_are_aliases(emulator, short, full):
    emulator.bound_agent("amy")
    assert emulator.get(short) == emulator.get(full)


def test_an_official_account_without_the_kf_feature_answers_65400(emulator):
    emulator.state.add_official_account(
        appid="wx_nokf_0000000001", secret="s", wechat_id="nokf", kf_enabled=False
    )
    token = emulator.state.issue_token(appid="wx_nokf_0000000001")["access_token"]
    result = requests.get(
        f"{emulator.base_url}/cgi-bin/customservice/getkflist",
        params={"access_token": token},
        timeout=TIMEOUT,
    ).json()
    assert result["errcode"] == 65400


def test_a_garbage_request_line_gets_json_not_a_traceback_page(emulator):
    # A one-word request line is HTTP/0.9 to the parser: no headers, just the body.
    answer = raw_exchange(emulator.base_url, b"GARBAGE\r\n\r\n")
    assert json.loads(answer)["errcode"] == -1


def test_a_bogus_method_gets_a_json_error(emulator):
    answer = raw_exchange(emulator.base_url, b"BREW /cgi-bin/token HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head
    assert json.loads(body)["errcode"] == -1
    assert b"Traceback" not in answer


def test_a_method_the_server_does_not_know_gets_json(emulator):
    response = requests.request("TRACE", f"{emulator.base_url}/cgi-bin/token", timeout=TIMEOUT)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["errcode"] == -1


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH", "OPTIONS"])
def test_delete_on_the_delete_endpoint_does_not_delete(emulator, method):
    account = emulator.bound_agent("mei")
    response = requests.request(
        method,
        f"{emulator.base_url}/customservice/kfaccount/del",
        params={"access_token": emulator.access_token(), "kf_account": account},
        timeout=TIMEOUT,
    )
    assert (response.status_code, response.json()["errcode"]) == (200, 43001)
    kf_list = emulator.get("/cgi-bin/customservice/getkflist")["kf_list"]
    assert [entry["kf_account"] for entry in kf_list] == [account]


@pytest.mark.parametrize(
    "path",
    [
        "/cgi-bin/customservice/getkflist",
        "/cgi-bin/customservice/getonlinekflist",
        "/customservice/kfsession/getsession",
        "/customservice/kfsession/getsessionlist",
        "/customservice/kfsession/getwaitcase",
        "/cgi-bin/token",
    ],
)
def test_put_on_a_get_operation_answers_43001(emulator, path):
    response = requests.put(
        f"{emulator.base_url}{path}",
        params={"access_token": emulator.access_token()},
        timeout=TIMEOUT,
    )
    assert response.json()["errcode"] == 43001


def test_a_put_to_the_token_endpoint_issues_no_token(emulator):
    params = {"grant_type": "client_credential", "appid": emulator.appid, "secret": emulator.secret}
    answer = requests.put(f"{emulator.base_url}/cgi-bin/token", params=params, timeout=TIMEOUT)
    assert "access_token" not in answer.json()
    tokens = emulator.control("state", customers=False)["official_accounts"][0]["tokens"]
    assert [t for t in tokens if t["kind"] == "classic"] == []


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_on_post_operations_answer_43002_and_do_nothing(emulator, method):
    body = utf8_json({"kf_account": emulator.kf_account("anna"), "nickname": "安娜"})
    response = requests.request(
        method,
        f"{emulator.base_url}/customservice/kfaccount/add",
        params={"access_token": emulator.access_token()},
        data=body,
        timeout=TIMEOUT,
    )
    assert response.json()["errcode"] == 43002
    assert emulator.get("/cgi-bin/customservice/getkflist") == {"kf_list": []}


def test_a_put_to_stable_token_answers_43002(emulator):
    body = utf8_json(
        {"grant_type": "client_credential", "appid": emulator.appid, "secret": emulator.secret}
    )
    response = requests.put(f"{emulator.base_url}/cgi-bin/stable_token", data=body, timeout=TIMEOUT)
    assert response.json()["errcode"] == 43002


def test_a_wrong_method_keeps_the_connection(emulator, one_connection):
    token = emulator.access_token()
    status, answer = one_connection.request(
        "DELETE", f"/customservice/kfaccount/add?access_token={token}", b'{"a":1}'
    )
    assert answer["errcode"] == 43002
    status, answer = one_connection.request(
        "GET", f"/cgi-bin/customservice/getkflist?access_token={token}"
    )
    assert answer == {"kf_list": []}
    assert one_connection.same_socket


def test_a_put_on_a_wechat_path_gets_a_wechat_error(emulator):
    response = requests.put(f"{emulator.base_url}/customservice/kfaccount/add", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["errcode"] == 43002


def test_a_bad_content_length_gets_json(emulator):
    answer = raw_exchange(
        emulator.base_url,
        b"POST /customservice/kfaccount/add HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["errcode"] == 47001


def test_a_chunked_body_is_read(emulator):
    body = utf8_json({"kf_account": emulator.kf_account("chunk"), "nickname": "分块"})

    def chunks():
        yield body[:10]
        yield body[10:]

    response = requests.post(
        f"{emulator.base_url}/customservice/kfaccount/add",
        params={"access_token": emulator.access_token()},
        data=chunks(),
        timeout=TIMEOUT,
    )
    assert response.json()["errcode"] == 0
    assert emulator.calls[-1].json == {"kf_account": "chunk@test_oa", "nickname": "分块"}


def test_one_keep_alive_connection_serves_many_requests(emulator):
    token = emulator.access_token()
    with requests.Session() as session:
        for _ in range(20):
            result = session.get(
                f"{emulator.base_url}/cgi-bin/customservice/getkflist",
                params={"access_token": token},
                timeout=TIMEOUT,
            )
            assert result.json() == {"kf_list": []}

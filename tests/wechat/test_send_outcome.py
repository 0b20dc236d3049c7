"""Whether a failed call proves WeChat did nothing (safe to repeat a send) or leaves
the outcome unknown (a send must not be repeated): the transport's split, at the HTTP
seam with `responses`, against real sockets and against the emulator's faults."""

from __future__ import annotations

import http.client
import pickle
import socket
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from kfadmin.wechat import (
    MemoryTokenStore,
    WeChatClient,
    WeChatRequestNotSent,
    WeChatSystemBusy,
    WeChatTransportError,
)
from tests.wechat.helpers import APPID, BASE, SECRET

SEND = BASE + "/cgi-bin/message/custom/send"


def send(kf: WeChatClient) -> None:
    kf.send_text_msg("o_customer_1", "您好")


def failure_of(kf: WeChatClient) -> Exception:
    with pytest.raises(Exception) as caught:
        send(kf)
    return caught.value


def test_a_connection_that_was_never_opened_proves_nothing_was_sent(kf, rsps):
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    rsps.add(responses.POST, SEND, body=requests.ConnectionError(MaxRetryError(None, SEND, refused)))

    error = failure_of(kf)

    assert isinstance(error, WeChatRequestNotSent)
    assert (error.retryable, error.outcome_unknown) == (True, False)


def test_a_connect_timeout_proves_nothing_was_sent(kf, rsps):
    rsps.add(responses.POST, SEND, body=requests.ConnectTimeout("connect timed out"))

    error = failure_of(kf)

    assert isinstance(error, WeChatRequestNotSent)
    assert error.outcome_unknown is False


def test_a_read_timeout_leaves_the_outcome_unknown(kf, rsps):
    rsps.add(responses.POST, SEND, body=requests.ReadTimeout("read timed out"))

    error = failure_of(kf)

    assert type(error) is WeChatTransportError
    assert (error.retryable, error.outcome_unknown) == (True, True)


def test_a_connection_dropped_after_the_request_was_written_leaves_the_outcome_unknown(kf, rsps):
    dropped = ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed without response"))
    rsps.add(responses.POST, SEND, body=requests.ConnectionError(dropped))

    error = failure_of(kf)

    assert type(error) is WeChatTransportError
    assert error.outcome_unknown is True


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_server_error_leaves_the_outcome_unknown(kf, rsps, status):
    rsps.add(responses.POST, SEND, status=status, body="<html>bad gateway</html>")

    error = failure_of(kf)

    assert type(error) is WeChatTransportError
    assert (error.http_status, error.outcome_unknown) == (status, True)


def test_an_answer_that_is_not_json_leaves_the_outcome_unknown(kf, rsps):
    rsps.add(responses.POST, SEND, status=200, body="<html>maintenance</html>")

    assert failure_of(kf).outcome_unknown is True


def test_system_busy_is_a_refusal_so_nothing_was_sent(kf, rsps):
    rsps.add(responses.POST, SEND, json={"errcode": -1, "errmsg": "system error"})

    error = failure_of(kf)

    assert isinstance(error, WeChatSystemBusy)
    assert (error.retryable, error.outcome_unknown) == (True, False)


def test_a_token_fetch_that_times_out_proves_the_send_never_left(rsps):
    kf = WeChatClient(APPID, SECRET, token_store=MemoryTokenStore())  # no token yet
    rsps.add(responses.POST, BASE + "/cgi-bin/stable_token", body=requests.ReadTimeout("read timed out"))
    rsps.add(responses.POST, SEND, json={"errcode": 0, "errmsg": "ok"})

    error = failure_of(kf)

    assert isinstance(error, WeChatRequestNotSent)
    assert [call.request.url.split("?")[0] for call in rsps.calls] == [BASE + "/cgi-bin/stable_token"]


def test_a_not_sent_error_keeps_its_class_through_pickling():
    error = WeChatRequestNotSent("POST /x: connection failed")

    copy = pickle.loads(pickle.dumps(error))

    assert (type(copy), copy.errmsg, copy.outcome_unknown) == (WeChatRequestNotSent, error.errmsg, False)


# ------------------------------------------------------------------ real sockets


def _client(base_url: str, *, timeout: float = 5) -> WeChatClient:
    store = MemoryTokenStore()
    store.set(APPID, "ACCESS_TOKEN_X", datetime.now(UTC) + timedelta(hours=1))
    return WeChatClient(APPID, SECRET, base_url=base_url, timeout=timeout, token_store=store)


def test_a_closed_port_is_proof_that_nothing_was_sent():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends

    error = failure_of(_client(f"http://127.0.0.1:{port}"))

    assert isinstance(error, WeChatRequestNotSent)


def test_the_emulator_dropping_the_connection_leaves_the_outcome_unknown(emulator):
    emulator.control("add_fault", kind="drop", path_prefix="/cgi-bin/message/custom/send", next=1)
    kf = WeChatClient(emulator.appid, emulator.secret, base_url=emulator.base_url, timeout=5)
    openid = emulator.customer()

    with pytest.raises(WeChatTransportError) as caught:
        kf.send_text_msg(openid, "您好")

    assert type(caught.value) is WeChatTransportError
    assert caught.value.outcome_unknown is True


def test_a_slow_emulator_answer_times_out_after_the_message_was_delivered(emulator):
    emulator.control("add_fault", kind="slow", delay=2, path_prefix="/cgi-bin/message/custom/send", next=1)
    kf = WeChatClient(emulator.appid, emulator.secret, base_url=emulator.base_url, timeout=(5, 1))
    openid = emulator.customer()
    kf.fetch_access_token()  # the token call is not slowed; fetch it before the fault matters

    with pytest.raises(WeChatTransportError) as caught:
        kf.send_text_msg(openid, "到了吗")

    assert caught.value.outcome_unknown is True
    delivered = [r for r in emulator.control("records", appid=emulator.appid)["records"] if r["opercode"] == 2002]
    assert [r["text"] for r in delivered] == ["到了吗"]

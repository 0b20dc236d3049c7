"""Errors: one errcode -> class table covering wechat-kf-api.md §8, a sentence for
each code, transport failures as retryable errors, and no secret in any message."""

from __future__ import annotations

import logging
import pickle

import pytest
import requests
import responses

from kfadmin.wechat import (
    WeChatClient,
    WeChatConflict,
    WeChatError,
    WeChatForbidden,
    WeChatInvalidArgument,
    WeChatNotFound,
    WeChatRateLimited,
    WeChatReplyWindowClosed,
    WeChatRetryableError,
    WeChatSendBudgetExhausted,
    WeChatSystemBusy,
    WeChatTokenError,
    WeChatTransportError,
    error_class_for,
    error_from_response,
    explain,
    known_errcodes,
    redact_url,
)
from tests.wechat.helpers import APPID, BASE, SECRET, TOKEN

# Every non-zero code of the §8 table (plus the token-endpoint codes of §2.1) and the
# class callers branch on. Written out independently of the implementation's table.
EXPECTED_CLASSES: dict[int, type[WeChatError]] = {
    -1: WeChatSystemBusy,
    40001: WeChatTokenError,
    40002: WeChatTokenError,
    40003: WeChatInvalidArgument,
    40004: WeChatInvalidArgument,
    40005: WeChatInvalidArgument,
    40006: WeChatInvalidArgument,
    40007: WeChatInvalidArgument,
    40008: WeChatInvalidArgument,
    40009: WeChatInvalidArgument,
    40013: WeChatTokenError,
    40014: WeChatTokenError,
    40033: WeChatInvalidArgument,
    40066: WeChatInvalidArgument,
    40125: WeChatTokenError,
    40164: WeChatForbidden,
    40200: WeChatForbidden,
    41001: WeChatTokenError,
    41002: WeChatTokenError,
    41004: WeChatTokenError,
    41005: WeChatInvalidArgument,
    42001: WeChatTokenError,
    43002: WeChatInvalidArgument,
    43004: WeChatForbidden,
    43019: WeChatForbidden,
    44002: WeChatInvalidArgument,
    45002: WeChatInvalidArgument,
    45008: WeChatInvalidArgument,
    45009: WeChatRateLimited,
    45011: WeChatRateLimited,
    45015: WeChatReplyWindowClosed,
    45047: WeChatSendBudgetExhausted,
    45072: WeChatInvalidArgument,
    45080: WeChatConflict,
    45081: WeChatConflict,
    45162: WeChatInvalidArgument,
    48001: WeChatForbidden,
    61450: WeChatError,
    61451: WeChatInvalidArgument,
    61452: WeChatInvalidArgument,
    61453: WeChatConflict,
    61454: WeChatInvalidArgument,
    61455: WeChatInvalidArgument,
    61456: WeChatConflict,
    61457: WeChatInvalidArgument,
    61458: WeChatConflict,
    61459: WeChatConflict,
    61500: WeChatInvalidArgument,
    65400: WeChatForbidden,
    65401: WeChatNotFound,
    65402: WeChatConflict,
    65403: WeChatInvalidArgument,
    65404: WeChatInvalidArgument,
    65405: WeChatConflict,
    65406: WeChatConflict,
    65407: WeChatConflict,
    65408: WeChatConflict,
    65409: WeChatInvalidArgument,
    65410: WeChatConflict,
    65411: WeChatConflict,
    65412: WeChatConflict,
    65413: WeChatNotFound,
    65414: WeChatConflict,
    65415: WeChatConflict,
    65416: WeChatInvalidArgument,
    65417: WeChatInvalidArgument,
    89503: WeChatForbidden,
}

SEND = BASE + "/cgi-bin/message/custom/send"


@pytest.mark.parametrize(("errcode", "error_class"), sorted(EXPECTED_CLASSES.items()))
def test_each_documented_errcode_maps_to_its_class(errcode, error_class):
    error = error_from_response(errcode, "errmsg rid: 1234")

    assert type(error) is error_class
    assert error_class_for(errcode) is error_class
    assert error.errcode == errcode
    assert error.errmsg == "errmsg rid: 1234"


@pytest.mark.parametrize("errcode", sorted(EXPECTED_CLASSES))
def test_each_documented_errcode_has_its_own_explanation(errcode):
    sentence = explain(errcode)

    assert sentence.endswith(".")
    assert "error code" not in sentence  # i.e. not the generic fallback
    assert error_from_response(errcode, "x").explanation == sentence


def test_the_table_covers_exactly_the_documented_codes():
    assert known_errcodes() == frozenset(EXPECTED_CLASSES)


def test_explanations_are_distinct_enough_to_act_on():
    sentences = [explain(code) for code in EXPECTED_CLASSES]

    # A few legacy codes deliberately share wording with their modern twins.
    assert len(set(sentences)) >= len(sentences) - 3


def test_45015_explains_the_48_hour_window():
    assert "48 hours" in explain(45015)
    assert "Wait until they write again" in explain(45015)


def test_an_unknown_errcode_gets_a_generic_sentence_with_the_code():
    error = error_from_response(99999, "something new")

    assert type(error) is WeChatError
    assert "99999" in error.explanation
    assert "99999" in str(error)


def test_the_class_depends_on_the_errcode_not_the_errmsg():
    a = error_from_response(45015, "response out of time limit or subscription is canceled")
    b = error_from_response(45015, "invalid credential, access_token is invalid rid: 1")
    c = error_from_response(40001, "api minute-quota reach limit, must slower")

    assert type(a) is type(b) is WeChatReplyWindowClosed
    assert type(c) is WeChatTokenError


def test_only_transport_failures_and_system_busy_are_retryable():
    for errcode in EXPECTED_CLASSES:
        error = error_from_response(errcode, "")
        assert error.retryable is (errcode == -1), errcode
        assert isinstance(error, WeChatRetryableError) is (errcode == -1), errcode
    assert WeChatTransportError("x").retryable is True
    assert issubclass(WeChatTransportError, WeChatRetryableError)


def test_errors_survive_pickling_between_celery_processes():
    error = error_from_response(45047, "out of response count limit")
    transport = WeChatTransportError("GET /x: HTTP 502", http_status=502)

    copy = pickle.loads(pickle.dumps(error))
    transport_copy = pickle.loads(pickle.dumps(transport))

    assert (type(copy), copy.errcode, copy.errmsg, copy.explanation) == (
        WeChatSendBudgetExhausted,
        45047,
        "out of response count limit",
        error.explanation,
    )
    assert (type(transport_copy), transport_copy.http_status, transport_copy.errmsg) == (
        WeChatTransportError,
        502,
        "GET /x: HTTP 502",
    )


def test_local_invalid_argument_has_no_errcode_and_is_a_value_error():
    error = WeChatInvalidArgument(None, "openid must not be empty.")

    assert error.errcode is None
    assert isinstance(error, ValueError)
    assert error.explanation == "openid must not be empty."
    assert str(error) == "openid must not be empty."


# ------------------------------------------------------------- over the wire


def test_an_errcode_answer_raises_the_mapped_error(kf, rsps: responses.RequestsMock):
    rsps.add(responses.POST, SEND, json={"errcode": 45047, "errmsg": "out of response count limit"})

    with pytest.raises(WeChatSendBudgetExhausted) as caught:
        kf.send_text_msg("OPENID", "hi")

    assert caught.value.errcode == 45047
    assert caught.value.errmsg == "out of response count limit"


def test_system_busy_is_retryable_but_not_retried_by_the_client(kf, rsps: responses.RequestsMock):
    rsps.add(responses.POST, SEND, json={"errcode": -1, "errmsg": "system error"})
    rsps.add(responses.POST, SEND, json={"errcode": 0, "errmsg": "ok"})

    with pytest.raises(WeChatSystemBusy) as caught:
        kf.send_text_msg("OPENID", "hi")

    assert caught.value.retryable is True
    assert len(rsps.calls) == 1


def test_errcode_zero_and_a_missing_errcode_are_success(kf, rsps: responses.RequestsMock):
    rsps.add(responses.POST, SEND, json={"errcode": 0, "errmsg": ""})
    rsps.add(responses.GET, BASE + "/cgi-bin/customservice/getkflist", json={"kf_list": []})

    kf.send_text_msg("OPENID", "hi")
    assert kf.get_account_list().kf_list == []


@pytest.mark.parametrize(
    "failure",
    [
        {"body": requests.ConnectionError("connection refused")},
        {"body": requests.ConnectTimeout("connect timed out")},
        {"body": requests.ReadTimeout("read timed out")},
        {"status": 500, "json": {"errcode": 0}},
        {"status": 502, "body": "<html>Bad Gateway</html>"},
        {"status": 404, "json": {"errcode": 40066, "errmsg": "invalid url"}},
        {"status": 200, "body": "<html>proxy login</html>"},
        {"status": 200, "body": ""},
        {"status": 200, "json": ["not", "an", "object"]},
    ],
    ids=[
        "connection-error",
        "connect-timeout",
        "read-timeout",
        "http-500",
        "http-502-html",
        "http-404",
        "html-body",
        "empty-body",
        "json-array",
    ],
)
def test_transport_failures_raise_a_retryable_transport_error(
    kf, rsps: responses.RequestsMock, failure
):
    rsps.add(responses.POST, SEND, **failure)

    with pytest.raises(WeChatTransportError) as caught:
        kf.send_text_msg("OPENID", "hi")

    assert caught.value.retryable is True
    assert caught.value.errcode is None
    assert len(rsps.calls) == 1
    assert TOKEN not in str(caught.value)


def test_a_transport_error_records_the_http_status(kf, rsps: responses.RequestsMock):
    rsps.add(responses.POST, SEND, status=503, body="busy")

    with pytest.raises(WeChatTransportError) as caught:
        kf.send_text_msg("OPENID", "hi")

    assert caught.value.http_status == 503
    assert "HTTP 503" in str(caught.value)


def test_every_request_carries_a_timeout(store, monkeypatch):
    seen: list[object] = []

    def fake_send(self, request, **kwargs):
        seen.append(kwargs.get("timeout"))
        raise requests.ConnectionError("offline")

    monkeypatch.setattr(requests.Session, "send", fake_send)
    client = WeChatClient(APPID, SECRET, token_store=store, timeout=3.5)

    with pytest.raises(WeChatTransportError):
        client.get_wait_case()

    assert seen == [3.5]


# ---------------------------------------------------------------- secrets


def test_the_token_never_appears_in_a_connection_error(kf, rsps: responses.RequestsMock):
    # requests puts the full URL, token included, into its exception messages.
    url = f"{SEND}?access_token={TOKEN}"
    rsps.add(
        responses.POST, SEND, body=requests.ConnectionError(f"Max retries exceeded with url: {url}")
    )

    with pytest.raises(WeChatTransportError) as caught:
        kf.send_text_msg("OPENID", "hi")

    error = caught.value
    assert TOKEN not in str(error) and TOKEN not in repr(error)
    assert "access_token=***" in str(error)
    # The original exception is not chained, so tracebacks cannot show it either.
    assert error.__cause__ is None and error.__context__ is None


def test_the_token_never_appears_when_no_mock_matches(kf, rsps: responses.RequestsMock):
    with pytest.raises(WeChatTransportError) as caught:
        kf.get_wait_case()

    assert TOKEN not in str(caught.value)


def test_secrets_never_reach_the_logs(rsps: responses.RequestsMock, caplog):
    rsps.add(
        responses.GET, BASE + "/cgi-bin/token", json={"access_token": TOKEN, "expires_in": 7200}
    )
    rsps.add(responses.POST, SEND, json={"errcode": 45015, "errmsg": "response out of time limit"})
    rsps.add(responses.GET, BASE + "/customservice/kfsession/getwaitcase", status=500)
    client = WeChatClient(APPID, SECRET, token_endpoint="token")

    with caplog.at_level(logging.DEBUG, logger="kfadmin.wechat"):
        with pytest.raises(WeChatReplyWindowClosed):
            client.send_text_msg("OPENID", "hi")
        with pytest.raises(WeChatTransportError):
            client.get_wait_case()

    assert caplog.records, "the client should log its requests"
    assert SECRET not in caplog.text
    assert TOKEN not in caplog.text
    assert "secret=***" in caplog.text
    assert "access_token=***" in caplog.text


def test_the_client_repr_hides_the_secret():
    client = WeChatClient(APPID, SECRET)

    assert SECRET not in repr(client)
    assert APPID in repr(client)


def test_fetch_access_token_result_repr_hides_the_token(rsps: responses.RequestsMock):
    rsps.add(
        responses.POST,
        BASE + "/cgi-bin/stable_token",
        json={"access_token": TOKEN, "expires_in": 7200},
    )

    token = WeChatClient(APPID, SECRET).fetch_access_token()

    assert TOKEN not in repr(token)


def test_redact_url_hides_token_and_secret_values():
    url = "https://x/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=S3&access_token=T"

    assert redact_url(url) == (
        "https://x/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=***&access_token=***"
    )

"""Access token: request shapes, caching with a margin, the store's refresh lock,
and the refresh-once-then-resend rule on 40001/40014/42001 (wechat-kf-api.md §2)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import responses

from kfadmin.wechat import (
    CachedToken,
    MemoryTokenStore,
    TokenStore,
    WeChatClient,
    WeChatInvalidArgument,
    WeChatRateLimited,
    WeChatReplyWindowClosed,
    WeChatResponseError,
    WeChatSendBudgetExhausted,
    WeChatTokenError,
)
from tests.wechat.helpers import (
    APPID,
    BASE,
    OK,
    SECRET,
    TOKEN,
    json_of,
    multipart_parts,
    path_of,
    query_of,
)

STABLE = BASE + "/cgi-bin/stable_token"
CLASSIC = BASE + "/cgi-bin/token"
SEND = BASE + "/cgi-bin/message/custom/send"


def token_answer(token: str, expires_in: int = 7200) -> dict:
    return {"access_token": token, "expires_in": expires_in}


def send_calls(rsps: responses.RequestsMock) -> list:
    return [c.request for c in rsps.calls if path_of(c.request) == "/cgi-bin/message/custom/send"]


def token_calls(rsps: responses.RequestsMock) -> list:
    return [c.request for c in rsps.calls if path_of(c.request).startswith("/cgi-bin/stable_token")]


# ------------------------------------------------------------------ request shapes


def test_it_fetches_a_stable_token_with_a_json_post(rsps: responses.RequestsMock):
    rsps.add(responses.POST, STABLE, json=token_answer("NEW"))
    client = WeChatClient(APPID, SECRET)

    token = client.fetch_access_token()

    (call,) = rsps.calls
    assert call.request.method == "POST"
    assert path_of(call.request) == "/cgi-bin/stable_token"
    assert query_of(call.request) == []
    assert call.request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json_of(call.request) == {
        "grant_type": "client_credential",
        "appid": APPID,
        "secret": SECRET,
        "force_refresh": False,
    }
    assert token.access_token == "NEW"
    assert token.expires_in == 7200


def test_it_fetches_a_classic_token_with_a_get(rsps: responses.RequestsMock):
    rsps.add(responses.GET, CLASSIC, json=token_answer("CLASSIC"))
    client = WeChatClient(APPID, SECRET, token_endpoint="token")

    token = client.fetch_access_token()

    (call,) = rsps.calls
    assert call.request.method == "GET"
    assert path_of(call.request) == "/cgi-bin/token"
    assert query_of(call.request) == [
        ("grant_type", "client_credential"),
        ("appid", APPID),
        ("secret", SECRET),
    ]
    assert call.request.body is None
    assert token.access_token == "CLASSIC"


def test_it_refuses_an_unknown_token_endpoint():
    with pytest.raises(WeChatInvalidArgument, match="token_endpoint"):
        WeChatClient(APPID, SECRET, token_endpoint="oauth")


def test_it_rejects_a_token_answer_without_a_token(rsps: responses.RequestsMock):
    rsps.add(responses.POST, STABLE, json={"expires_in": 7200})

    with pytest.raises(WeChatResponseError):
        WeChatClient(APPID, SECRET).fetch_access_token()


def test_a_token_endpoint_error_surfaces_typed_and_is_not_retried(rsps: responses.RequestsMock):
    rsps.add(responses.POST, STABLE, json={"errcode": 40125, "errmsg": "invalid appsecret"})
    client = WeChatClient(APPID, SECRET)

    with pytest.raises(WeChatTokenError) as caught:
        client.send_text_msg("OPENID", "hi")

    assert caught.value.errcode == 40125
    assert len(rsps.calls) == 1


def test_a_wrong_appsecret_at_the_token_endpoint_is_not_retried(rsps: responses.RequestsMock):
    rsps.add(responses.POST, STABLE, json={"errcode": 40001, "errmsg": "invalid credential"})

    with pytest.raises(WeChatTokenError):
        WeChatClient(APPID, SECRET).get_wait_case()

    assert len(rsps.calls) == 1


# ------------------------------------------------------------------------- caching


def test_it_caches_the_token_across_calls(rsps: responses.RequestsMock):
    rsps.add(responses.POST, STABLE, json=token_answer("NEW"))
    rsps.add(responses.POST, SEND, json=OK)
    client = WeChatClient(APPID, SECRET)

    client.send_text_msg("OPENID", "one")
    client.send_text_msg("OPENID", "two")
    client.fetch_access_token()

    assert len(token_calls(rsps)) == 1
    assert [query_of(r) for r in send_calls(rsps)] == [[("access_token", "NEW")]] * 2


def test_it_stores_the_expiry_minus_the_margin(rsps: responses.RequestsMock):
    rsps.add(responses.POST, STABLE, json=token_answer("NEW", 7200))
    store = MemoryTokenStore()

    before = datetime.now(UTC)
    WeChatClient(APPID, SECRET, token_store=store).fetch_access_token()

    cached = store.get(APPID)
    assert cached is not None and cached.access_token == "NEW"
    expected = before + timedelta(seconds=7200 - 300)
    assert abs((cached.expires_at - expected).total_seconds()) < 5


def test_the_result_carries_wechats_expires_in_not_the_reduced_one(
    rsps: responses.RequestsMock,
):
    # 345 is the stable_token doc's example answer.
    rsps.add(responses.POST, STABLE, json=token_answer("NEW", 345))
    store = MemoryTokenStore()
    client = WeChatClient(APPID, SECRET, token_store=store)

    before = datetime.now(UTC)
    token = client.fetch_access_token()

    assert token.expires_in == 345
    cached = store.get(APPID)
    assert abs((cached.wechat_expires_at - (before + timedelta(seconds=345))).total_seconds()) < 5
    assert cached.expires_at < cached.wechat_expires_at


def test_a_cached_token_is_reported_with_the_seconds_wechat_still_accepts_it(
    rsps: responses.RequestsMock,
):
    rsps.add(responses.POST, STABLE, json=token_answer("NEW", 7200))
    client = WeChatClient(APPID, SECRET)
    client.fetch_access_token()

    again = client.fetch_access_token()

    assert len(token_calls(rsps)) == 1
    assert 7200 - 300 < again.expires_in <= 7200


def test_wechats_remaining_seconds_are_counted_from_its_expiry():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    token = CachedToken("T", now + timedelta(seconds=6900), now + timedelta(seconds=7200.9))

    assert token.expires_in(now) == 6900
    assert token.wechat_expires_in(now) == 7200


def test_a_store_that_keeps_only_the_cutoff_reports_the_cutoff():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    token = CachedToken("T", now + timedelta(seconds=6900))

    assert token.wechat_expires_in(now) == 6900


def test_a_short_lived_token_spends_at_most_half_its_life_in_the_margin(
    rsps: responses.RequestsMock,
):
    rsps.add(responses.POST, STABLE, json=token_answer("SHORT", 120))
    store = MemoryTokenStore()

    before = datetime.now(UTC)
    WeChatClient(APPID, SECRET, token_store=store).fetch_access_token()

    cached = store.get(APPID)
    assert cached is not None
    assert abs((cached.expires_at - (before + timedelta(seconds=60))).total_seconds()) < 5


def test_it_refreshes_a_token_that_entered_the_margin(rsps: responses.RequestsMock):
    store = MemoryTokenStore()
    # Stored expiries already include the margin: one in the past means "refresh now".
    store.set(APPID, "OLD", datetime.now(UTC) - timedelta(seconds=1))
    rsps.add(responses.POST, STABLE, json=token_answer("NEW"))
    rsps.add(responses.POST, SEND, json=OK)

    WeChatClient(APPID, SECRET, token_store=store).send_text_msg("OPENID", "hi")

    assert len(token_calls(rsps)) == 1
    assert query_of(send_calls(rsps)[0]) == [("access_token", "NEW")]
    assert store.get(APPID).access_token == "NEW"


def test_it_uses_a_cached_token_that_is_still_fresh(rsps: responses.RequestsMock, kf):
    rsps.add(responses.POST, SEND, json=OK)

    kf.send_text_msg("OPENID", "hi")

    assert len(rsps.calls) == 1
    assert query_of(send_calls(rsps)[0]) == [("access_token", TOKEN)]


def test_force_refresh_bypasses_the_cache_but_not_the_stable_normal_mode(
    rsps: responses.RequestsMock, kf, store
):
    rsps.add(responses.POST, STABLE, json=token_answer("FORCED"))

    token = kf.fetch_access_token(force_refresh=True)

    assert token.access_token == "FORCED"
    assert json_of(rsps.calls[0].request)["force_refresh"] is False
    assert store.get(APPID).access_token == "FORCED"


def test_the_token_margin_must_be_at_least_a_minute():
    with pytest.raises(WeChatInvalidArgument):
        WeChatClient(APPID, SECRET, token_margin=10)


def test_the_memory_store_satisfies_the_token_store_protocol():
    assert isinstance(MemoryTokenStore(), TokenStore)


# ------------------------------------------------------------- store refresh lock


def test_refresh_reuses_a_token_another_worker_stored_meanwhile():
    store = MemoryTokenStore()
    store.set(APPID, "REFRESHED_BY_OTHER", datetime.now(UTC) + timedelta(hours=1))

    def fetch() -> CachedToken:
        raise AssertionError("must not fetch: the stale token was already replaced")

    token = store.refresh(APPID, fetch, stale_token="STALE")

    assert token.access_token == "REFRESHED_BY_OTHER"


def test_refresh_fetches_when_the_stored_token_is_the_stale_one():
    store = MemoryTokenStore()
    store.set(APPID, "STALE", datetime.now(UTC) + timedelta(hours=1))
    fresh = CachedToken("FRESH", datetime.now(UTC) + timedelta(hours=2))

    assert store.refresh(APPID, lambda: fresh, stale_token="STALE") is fresh
    assert store.get(APPID).access_token == "FRESH"


def test_concurrent_refreshes_fetch_only_once():
    store = MemoryTokenStore()
    store.set(APPID, "STALE", datetime.now(UTC) + timedelta(hours=1))
    fetches: list[int] = []

    def fetch() -> CachedToken:
        fetches.append(1)
        time.sleep(0.05)  # widen the race window
        return CachedToken(f"FRESH{len(fetches)}", datetime.now(UTC) + timedelta(hours=2))

    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(store.refresh(APPID, fetch, "STALE").access_token)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(fetches) == 1
    assert results == ["FRESH1"] * 8


def test_cached_token_repr_hides_the_token():
    cached = CachedToken("SECRET_TOKEN_VALUE", datetime.now(UTC))

    assert "SECRET_TOKEN_VALUE" not in repr(cached)


# ---------------------------------------------------------- refresh once on 40001


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
def test_it_refreshes_the_token_once_and_resends_the_identical_request(
    rsps: responses.RequestsMock, kf, store, errcode
):
    rsps.add(responses.POST, SEND, json={"errcode": errcode, "errmsg": "token rejected"})
    rsps.add(responses.POST, SEND, json=OK)
    rsps.add(responses.POST, STABLE, json=token_answer("FRESH"))

    kf.send_text_msg("OPENID", "重要 <b>消息</b>", kf_account="a@b")

    first, second = send_calls(rsps)
    assert len(token_calls(rsps)) == 1
    assert query_of(first) == [("access_token", TOKEN)]
    assert query_of(second) == [("access_token", "FRESH")]
    assert (first.method, path_of(first), first.body) == (
        second.method,
        path_of(second),
        second.body,
    )
    assert first.headers["Content-Type"] == second.headers["Content-Type"]
    assert store.get(APPID).access_token == "FRESH"


def test_it_refreshes_the_token_once_on_40001_for_a_get_with_query(
    rsps: responses.RequestsMock, kf
):
    path = BASE + "/customservice/kfaccount/del"
    rsps.add(responses.GET, path, json={"errcode": 40001, "errmsg": "invalid credential"})
    rsps.add(responses.GET, path, json=OK)
    rsps.add(responses.POST, STABLE, json=token_answer("FRESH"))

    kf.delete_account("test1@test")

    first, _token, second = (c.request for c in rsps.calls)
    assert query_of(first) == [("access_token", TOKEN), ("kf_account", "test1@test")]
    assert query_of(second) == [("access_token", "FRESH"), ("kf_account", "test1@test")]


def test_a_second_40001_surfaces_as_a_token_error(rsps: responses.RequestsMock, kf):
    rsps.add(responses.POST, SEND, json={"errcode": 40001, "errmsg": "invalid credential"})
    rsps.add(responses.POST, STABLE, json=token_answer("FRESH"))

    with pytest.raises(WeChatTokenError) as caught:
        kf.send_text_msg("OPENID", "hi")

    assert caught.value.errcode == 40001
    assert len(send_calls(rsps)) == 2
    assert len(token_calls(rsps)) == 1
    assert caught.value.__context__ is None


def test_a_refresh_uses_the_token_another_worker_already_fetched(
    rsps: responses.RequestsMock, store
):
    class OtherWorkerRefreshedFirst(MemoryTokenStore):
        """Simulates another process replacing the token between our call and refresh."""

        def refresh(self, appid, fetch, stale_token):
            self.set(appid, "FROM_OTHER_WORKER", datetime.now(UTC) + timedelta(hours=1))
            return super().refresh(appid, fetch, stale_token)

    racing = OtherWorkerRefreshedFirst()
    racing.set(APPID, TOKEN, datetime.now(UTC) + timedelta(hours=1))
    rsps.add(responses.POST, SEND, json={"errcode": 42001, "errmsg": "access_token expired"})
    rsps.add(responses.POST, SEND, json=OK)

    WeChatClient(APPID, SECRET, token_store=racing).send_text_msg("OPENID", "hi")

    assert token_calls(rsps) == []
    assert query_of(send_calls(rsps)[1]) == [("access_token", "FROM_OTHER_WORKER")]


def test_it_resends_the_avatar_upload_with_the_full_file_content(
    rsps: responses.RequestsMock, kf, tmp_path
):
    content = b"\xff\xd8\xff" + bytes(range(256)) * 64
    image = tmp_path / "face.jpg"
    image.write_bytes(content)
    upload = BASE + "/customservice/kfaccount/uploadheadimg"
    rsps.add(responses.POST, upload, json={"errcode": 40014, "errmsg": "invalid access_token"})
    rsps.add(responses.POST, upload, json=OK)
    rsps.add(responses.POST, STABLE, json=token_answer("FRESH"))

    with image.open("rb") as handle:
        kf.upload_avatar("test1@test", handle)

    first, second = (c.request for c in rsps.calls if "uploadheadimg" in c.request.url)
    assert multipart_parts(first) == [("media", "face.jpg", content)]
    assert multipart_parts(second) == [("media", "face.jpg", content)]
    assert query_of(second) == [("access_token", "FRESH"), ("kf_account", "test1@test")]


def test_41001_is_a_token_error_but_not_refreshed(rsps: responses.RequestsMock, kf):
    rsps.add(responses.POST, SEND, json={"errcode": 41001, "errmsg": "access_token missing"})

    with pytest.raises(WeChatTokenError):
        kf.send_text_msg("OPENID", "hi")

    assert len(rsps.calls) == 1


@pytest.mark.parametrize(
    ("errcode", "error_class"),
    [
        (45009, WeChatRateLimited),
        (45011, WeChatRateLimited),
        (45015, WeChatReplyWindowClosed),
        (45047, WeChatSendBudgetExhausted),
    ],
)
def test_quota_window_and_budget_errors_are_never_retried(
    rsps: responses.RequestsMock, kf, errcode, error_class
):
    rsps.add(responses.POST, SEND, json={"errcode": errcode, "errmsg": "limit"})
    rsps.add(responses.POST, SEND, json=OK)

    with pytest.raises(error_class) as caught:
        kf.send_text_msg("OPENID", "hi")

    assert len(rsps.calls) == 1
    assert caught.value.retryable is False

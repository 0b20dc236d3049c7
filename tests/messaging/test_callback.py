"""The callback receiver: URL verification, the three push modes, each event, WeChat's
redeliveries, and refusals that change nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client

from accounts.models import Agent, OfficialAccount
from kfadmin.wechat import WeChatCrypto, msg_signature, sha1_signature
from messaging import callback
from messaging.models import CallbackNonce, MessageRecord, record_digest
from sessions_app.models import Customer, KfSession
from sessions_app.selectors import customer_window_state
from sessions_app.services import customer_window_consume
from tests.factories import AgentFactory, CustomerFactory, KfSessionFactory, OfficialAccountFactory

pytestmark = pytest.mark.django_db

TOKEN = "callbacktoken2718"
AES_KEY = "jxAko083VoJ3lcPXJWzcGJ0M1tFVLgdD6qAq57GJY1U"
ORIGINAL_ID = "gh_0123456789ab"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
TS = 1740830400  # 2025-03-01 12:00:00 UTC
AT = datetime.fromtimestamp(TS, tz=UTC)


@pytest.fixture(autouse=True)
def receiver_clock(request, monkeypatch):
    """The receiver's clock stands at TS, the time of the pushes built here (the
    emulator's pushes carry the real time)."""
    if "live_server" not in request.fixturenames:
        monkeypatch.setattr(callback, "_now", lambda: TS)


@pytest.fixture
def account() -> OfficialAccount:
    return OfficialAccountFactory(
        appid="wx1def0e9e5891b338",
        wechat_id="shop",
        callback_token=TOKEN,
        encoding_aes_key=AES_KEY,
        original_id=ORIGINAL_ID,
        callback_mode=OfficialAccount.CallbackMode.PLAIN,
    )


@pytest.fixture
def client() -> Client:
    # WeChat sends no CSRF token and no session cookie.
    return Client(enforce_csrf_checks=True)


def url(account: OfficialAccount) -> str:
    return f"/wechat/callback/{account.appid}/"


def xml(**fields: str | int) -> str:
    parts = "".join(
        f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()
    )
    return f"<xml>{parts}</xml>"


def text_message(content: str = "你好，我的订单什么时候发货？", *, openid: str = OPENID, ts: int = TS, msg_id: str = "6054768590064713728") -> str:
    return xml(ToUserName=ORIGINAL_ID, FromUserName=openid, CreateTime=ts, MsgType="text", Content=content, MsgId=msg_id)


def event(name: str, *, openid: str = OPENID, ts: int = TS, **extra: str) -> str:
    return xml(ToUserName=ORIGINAL_ID, FromUserName=openid, CreateTime=ts, MsgType="event", Event=name, **extra)


_nonces = iter(range(10**6))


def post(client: Client, account: OfficialAccount, body: str | bytes, *, mode: str = "plain", token: str = TOKEN, nonce: str | None = None, path: str | None = None, ts: int = TS):
    """POST `body` the way WeChat does in `mode` (plain, compat or safe), with a fresh
    nonce unless one is given."""
    ts = str(ts)
    nonce = nonce or f"1514{next(_nonces)}"
    query = {"signature": sha1_signature(token, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": OPENID}
    if mode != "plain":
        encrypted = WeChatCrypto(token, AES_KEY, account.appid).encrypt(body)
        query["encrypt_type"] = "aes"
        query["msg_signature"] = msg_signature(token, ts, nonce, encrypted)
        if mode == "safe":
            body = xml(ToUserName=ORIGINAL_ID, Encrypt=encrypted)
        else:
            body = body.replace("</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
    target = (path or url(account)) + "?" + urlencode(query)
    return client.post(target, data=body if isinstance(body, bytes) else body.encode(), content_type="text/xml")


def snapshot(account: OfficialAccount) -> tuple:
    account.refresh_from_db()
    return (
        list(MessageRecord.objects.values_list("id", "text")),
        list(Customer.objects.values_list("id", "window_remaining", "window_expires_at", "last_seen_at")),
        list(KfSession.objects.values_list("id", "state", "agent_id", "closed_at")),
        list(Agent.objects.values_list("id", "kf_account")),
        list(CallbackNonce.objects.values_list("id", "nonce")),
        account.updated_at,
    )


# --------------------------------------------------------------------------- verification


def test_url_verification_echoes_echostr(client, account, monkeypatch):
    # Signature vector from WeChat's documentation (wechat-kf-api.md §7.1).
    account.callback_token = "AAAAA"
    account.save()
    monkeypatch.setattr(callback, "_now", lambda: 1714036504)
    response = client.get(
        url(account),
        {"signature": "f464b24fc39322e44b38aa78f5edd27bd1441696", "timestamp": "1714036504",
         "nonce": "1514711492", "echostr": "4375120948345356249"},
    )
    assert response.status_code == 200
    assert response.content == b"4375120948345356249"


def test_url_verification_with_a_bad_signature_is_refused(client, account):
    response = client.get(url(account), {"signature": "0" * 40, "timestamp": "1", "nonce": "2", "echostr": "3"})
    assert response.status_code == 403
    assert b"3" not in response.content


def test_an_unknown_appid_gets_the_answer_of_a_bad_signature(client, account):
    bad_signature = post(client, account, text_message(), token="not-the-token")
    nobody = OfficialAccount(appid="wx_nobody")
    unknown = post(client, nobody, text_message())
    assert (unknown.status_code, unknown.content) == (bad_signature.status_code, bad_signature.content) == (403, b"forbidden")
    assert not MessageRecord.objects.exists()


@pytest.mark.parametrize("change", [{"is_active": False}, {"callback_token": ""}], ids=["inactive", "no-token"])
def test_an_inactive_or_tokenless_account_gets_no_callbacks(client, account, change):
    OfficialAccount.objects.filter(pk=account.pk).update(**change)
    response = post(client, account, text_message())
    assert (response.status_code, response.content) == (403, b"forbidden")
    assert not MessageRecord.objects.exists()


def test_other_methods_are_not_allowed(client, account):
    assert client.put(url(account)).status_code == 405


def test_the_trailing_slash_is_optional(client, account):
    response = post(client, account, text_message(), path=f"/wechat/callback/{account.appid}")
    assert response.status_code == 200
    assert MessageRecord.objects.count() == 1


# --------------------------------------------------------------------------- modes


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_a_customer_message_is_archived_and_opens_the_window(client, account, mode):
    account.callback_mode = mode
    account.save()
    response = post(client, account, text_message("我要退款"), mode=mode)
    assert response.status_code == 200
    assert response.content == b"success"
    record = MessageRecord.objects.get()
    assert (record.openid, record.opercode, record.text, record.worker) == (OPENID, 2001, "我要退款", "")
    assert record.source == MessageRecord.Source.CALLBACK
    assert record.time == AT
    customer = Customer.objects.get(official_account=account, openid=OPENID)
    assert customer.window_remaining == 5
    assert customer.window_expires_at == AT + timedelta(hours=48)
    assert customer.last_message_at == AT


def test_safe_mode_uses_the_decrypted_content_not_the_plaintext_copy(client, account):
    # In compatible mode the plaintext fields could be tampered with; the signed
    # ciphertext is what counts.
    ts = str(TS)
    nonce = "42"
    real = text_message("真的内容")
    encrypted = WeChatCrypto(TOKEN, AES_KEY, account.appid).encrypt(real)
    body = text_message("forged").replace("</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
    query = (
        f"signature={sha1_signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}&encrypt_type=aes"
        f"&msg_signature={msg_signature(TOKEN, ts, nonce, encrypted)}"
    )
    response = client.post(f"{url(account)}?{query}", data=body.encode(), content_type="text/xml")
    assert response.status_code == 200
    assert MessageRecord.objects.get().text == "真的内容"


@pytest.mark.parametrize(
    ("msg_type", "shown"),
    [("image", "[image]"), ("voice", "[voice]"), ("video", "[video]"), ("shortvideo", "[video]"), ("location", "[location]")],
)
def test_media_messages_are_archived_as_placeholders(client, account, msg_type, shown):
    body = xml(ToUserName=ORIGINAL_ID, FromUserName=OPENID, CreateTime=TS, MsgType=msg_type, MediaId="m1", MsgId="1")
    assert post(client, account, body).status_code == 200
    assert MessageRecord.objects.get().text == shown


def test_a_message_updates_the_latest_time_of_a_waiting_session(client, account):
    session = KfSessionFactory(official_account=account, customer__openid=OPENID, latest_time=AT - timedelta(minutes=3))
    post(client, account, text_message())
    session.refresh_from_db()
    assert session.latest_time == AT


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    "push",
    [
        event("subscribe"),
        event("subscribe", EventKey="qrscene_123", Ticket="t"),
        event("SCAN", EventKey="123", Ticket="t"),
        event("CLICK", EventKey="MENU_HELP"),
        event("scancode_push", EventKey="scan"),
    ],
    ids=["follow", "follow-by-qr", "scan", "menu-click", "scancode"],
)
def test_follow_scan_and_menu_click_open_the_short_window(client, account, push):
    assert post(client, account, push).status_code == 200
    customer = Customer.objects.get(openid=OPENID)
    assert (customer.event_remaining, customer.event_expires_at) == (3, AT + timedelta(seconds=60))
    assert (customer.window_remaining, customer.window_expires_at) == (0, None)  # no message grant
    assert customer.last_message_at is None
    assert not MessageRecord.objects.exists()


def test_unfollowing_closes_the_window(client, account):
    post(client, account, text_message())
    post(client, account, event("CLICK", EventKey="MENU_HELP", ts=TS + 2))
    post(client, account, event("unsubscribe", ts=TS + 5))
    customer = Customer.objects.get(openid=OPENID)
    # Both grants end: the message's and the click's.
    assert (customer.window_remaining, customer.window_expires_at) == (0, AT + timedelta(seconds=5))
    assert (customer.event_remaining, customer.event_expires_at) == (0, AT + timedelta(seconds=5))
    state = customer_window_state(customer=customer, now=AT + timedelta(minutes=1))
    # Closed, not an open window with its sends used up.
    assert (state.is_open, state.budget_used_up, state.seconds_left) == (False, False, 0)


def test_an_unfollow_delivered_after_a_newer_message_leaves_its_window_open(client, account):
    post(client, account, text_message(ts=TS + 60, msg_id="6054768590064713999"))
    post(client, account, event("unsubscribe", ts=TS + 5))
    customer = Customer.objects.get(openid=OPENID)
    assert (customer.window_remaining, customer.window_expires_at) == (5, AT + timedelta(hours=48, seconds=60))


def test_a_view_event_is_acknowledged_and_ignored(client, account):
    response = post(client, account, event("VIEW", EventKey="https://example.com"))
    assert response.status_code == 200
    assert not Customer.objects.exists()


def test_kf_create_session_opens_the_waiting_session(client, account):
    agent = AgentFactory(official_account=account, kf_account=f"alice@{account.wechat_id}")
    waiting = KfSessionFactory(official_account=account, customer__openid=OPENID, created_at=AT - timedelta(minutes=2))
    assert post(client, account, event("kf_create_session", KfAccount=agent.kf_account)).status_code == 200
    waiting.refresh_from_db()
    assert (waiting.state, waiting.agent, waiting.accepted_at) == (KfSession.State.OPEN, agent, AT)
    record = MessageRecord.objects.get()
    assert (record.opercode, record.worker, record.source) == (1001, agent.kf_account, "callback")


def test_kf_create_session_for_an_unknown_agent_creates_its_row(client, account):
    post(client, account, event("kf_create_session", KfAccount="newbie@shop"))
    session = KfSession.objects.get()
    assert session.state == KfSession.State.OPEN
    assert session.agent.kf_account == "newbie@shop"
    assert session.customer.openid == OPENID


def test_kf_switch_session_moves_the_session_to_the_new_agent(client, account):
    alice = AgentFactory(official_account=account, kf_account="alice@shop")
    bob = AgentFactory(official_account=account, kf_account="bob@shop")
    session = KfSessionFactory(
        official_account=account, customer__openid=OPENID, state="open", agent=alice, accepted_at=AT - timedelta(minutes=5)
    )
    post(client, account, event("kf_switch_session", FromKfAccount="alice@shop", ToKfAccount="bob@shop"))
    session.refresh_from_db()
    assert (session.state, session.agent, session.accepted_at) == ("open", bob, AT - timedelta(minutes=5))
    assert KfSession.objects.count() == 1
    record = MessageRecord.objects.get()
    assert (record.opercode, record.worker, record.text) == (1003, "bob@shop", "")


def test_kf_close_session_closes_it(client, account):
    alice = AgentFactory(official_account=account, kf_account="alice@shop")
    session = KfSessionFactory(
        official_account=account, customer__openid=OPENID, state="open", agent=alice, accepted_at=AT - timedelta(minutes=5)
    )
    post(client, account, event("kf_close_session", KfAccount="alice@shop"))
    session.refresh_from_db()
    assert (session.state, session.closed_at) == ("closed", AT)
    assert MessageRecord.objects.get().opercode == 1004


def test_a_late_close_does_not_close_a_newer_session(client, account):
    alice = AgentFactory(official_account=account, kf_account="alice@shop")
    session = KfSessionFactory(
        official_account=account, customer__openid=OPENID, state="open", agent=alice, accepted_at=AT + timedelta(minutes=1)
    )
    post(client, account, event("kf_close_session", KfAccount="alice@shop"))
    session.refresh_from_db()
    assert session.state == "open"


# --------------------------------------------------------------------------- redelivery


def test_a_redelivered_message_is_stored_once_and_does_not_refill_the_budget(client, account):
    post(client, account, text_message(), mode="safe", nonce="1")
    customer = Customer.objects.get(openid=OPENID)
    customer_window_consume(customer, now=AT)
    customer_window_consume(customer, now=AT)
    # WeChat retries with a new nonce (and in safe mode a new ciphertext).
    assert post(client, account, text_message(), mode="safe", nonce="2").status_code == 200
    assert post(client, account, text_message(), mode="safe", nonce="3").content == b"success"
    assert MessageRecord.objects.count() == 1
    assert Customer.objects.get(openid=OPENID).window_remaining == 3


def test_a_redelivered_create_does_not_reopen_a_closed_session(client, account):
    post(client, account, event("kf_create_session", KfAccount="alice@shop", ts=TS))
    post(client, account, event("kf_close_session", KfAccount="alice@shop", ts=TS + 60))
    post(client, account, event("kf_create_session", KfAccount="alice@shop", ts=TS), nonce="99")
    assert list(KfSession.objects.values_list("state", flat=True)) == ["closed"]
    assert MessageRecord.objects.count() == 2


def test_a_create_that_arrives_after_its_close_leaves_the_session_closed(client, account):
    KfSessionFactory(official_account=account, customer__openid=OPENID, state="closed", closed_at=AT + timedelta(minutes=9))
    post(client, account, event("kf_create_session", KfAccount="alice@shop"))
    assert list(KfSession.objects.values_list("state", flat=True)) == ["closed"]


def test_a_redelivered_follow_does_not_refill_the_short_window(client, account):
    post(client, account, event("subscribe"))
    customer_window_consume(Customer.objects.get(openid=OPENID), now=AT)
    post(client, account, event("subscribe"), nonce="7")
    assert Customer.objects.get(openid=OPENID).event_remaining == 2


# --------------------------------------------------------------------------- refusals


def test_a_push_with_a_bad_signature_changes_nothing(client, account):
    CustomerFactory(official_account=account, openid=OPENID)
    before = snapshot(account)
    response = post(client, account, text_message(), token="not-the-token")
    assert response.status_code == 403
    assert response.content == b"forbidden"
    assert snapshot(account) == before


def test_a_push_without_signature_changes_nothing(client, account):
    response = client.post(url(account), data=text_message().encode(), content_type="text/xml")
    assert response.status_code == 403
    assert not MessageRecord.objects.exists()


def test_a_safe_mode_push_with_a_bad_msg_signature_changes_nothing(client, account):
    ts, nonce = str(TS), "5"
    encrypted = WeChatCrypto(TOKEN, AES_KEY, account.appid).encrypt(text_message())
    query = f"signature={sha1_signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={'0' * 40}"
    response = client.post(f"{url(account)}?{query}", data=xml(ToUserName=ORIGINAL_ID, Encrypt=encrypted).encode(), content_type="text/xml")
    assert response.status_code == 403
    assert not MessageRecord.objects.exists() and not Customer.objects.exists()


def test_a_push_encrypted_for_another_appid_changes_nothing(client, account):
    ts, nonce = str(TS), "6"
    encrypted = WeChatCrypto(TOKEN, AES_KEY, "wx_someone_else").encrypt(text_message())
    query = (
        f"signature={sha1_signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}&encrypt_type=aes"
        f"&msg_signature={msg_signature(TOKEN, ts, nonce, encrypted)}"
    )
    response = client.post(f"{url(account)}?{query}", data=xml(ToUserName=ORIGINAL_ID, Encrypt=encrypted).encode(), content_type="text/xml")
    assert response.status_code == 400
    assert b"different AppID" in response.content
    assert not MessageRecord.objects.exists() and not Customer.objects.exists()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("<xml><ToUserName>gh_x</ToUserName", b"not well-formed"),
        ("not xml at all", b"not well-formed"),
        ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>', b"DOCTYPE"),
        ("<html><body/></html>", b"not <xml>"),
        (xml(ToUserName=ORIGINAL_ID, MsgType="text", Content="who?"), b"FromUserName"),
    ],
    ids=["truncated", "not-xml", "doctype", "wrong-root", "no-sender"],
)
def test_malformed_xml_is_refused_and_changes_nothing(client, account, body, says):
    before = snapshot(account)
    response = post(client, account, body)
    assert response.status_code == 400
    assert says in response.content
    assert snapshot(account) == before


def test_a_push_addressed_to_another_account_changes_nothing(client, account):
    body = text_message().replace(ORIGINAL_ID, "gh_another")
    response = post(client, account, body)
    assert response.status_code == 400
    assert not MessageRecord.objects.exists() and not Customer.objects.exists()


def test_an_aes_push_to_an_account_without_a_key_is_refused(client, account):
    account.encoding_aes_key = ""
    account.save()
    response = post(client, account, text_message(), mode="safe")
    assert response.status_code == 400
    assert b"EncodingAESKey" in response.content
    assert not MessageRecord.objects.exists()


def test_the_token_and_aes_key_never_reach_the_log(client, account, caplog):
    caplog.set_level(logging.DEBUG)
    post(client, account, text_message(), mode="safe")
    post(client, account, text_message(), token="wrong")
    post(client, account, "<xml>", mode="safe")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "bad signature" in logged
    assert TOKEN not in logged
    assert AES_KEY not in logged


# --------------------------------------------------------------------------- hostile pushes
#
# Each is signed with the account's token, as anyone holding a URL that WeChat once
# called (an access log keeps them) can do.

SVG_OPENID = 'o/x"><svg onload=alert(1)>'
UTF16_ENTITY = (
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY who "' + OPENID + '">]>'
    + text_message(openid="&who;").replace("<![CDATA[&who;]]>", "&who;")
)


def hostile_pushes(account: OfficialAccount) -> dict:
    """name -> (keyword arguments of post(), account mode)."""
    kf = f"alice@{account.wechat_id}"
    return {
        "stale-timestamp": ({"body": text_message(), "ts": TS - 301}, "plain"),
        "future-timestamp": ({"body": text_message(), "ts": TS + 301}, "plain"),
        "plaintext-to-safe-mode": ({"body": text_message()}, "safe"),
        "svg-openid": ({"body": text_message(openid=SVG_OPENID)}, "plain"),
        "long-openid": ({"body": text_message(openid="o" * 65)}, "plain"),
        "openid-in-safe-mode": ({"body": text_message(openid=SVG_OPENID), "mode": "safe"}, "safe"),
        "kf-account-without-wechat-id": ({"body": event("kf_create_session", KfAccount="alice")}, "plain"),
        "kf-account-of-another-oa": ({"body": event("kf_create_session", KfAccount="alice@other_oa")}, "plain"),
        "kf-switch-to-a-forged-agent": (
            {"body": event("kf_switch_session", FromKfAccount=kf, ToKfAccount='x"><b>@shop')}, "plain",
        ),
        "create-time-far-future": ({"body": text_message(ts=TS + 86_400 * 365)}, "plain"),
        "create-time-zero": ({"body": text_message(ts=0)}, "plain"),
        "create-time-overflow": ({"body": text_message(ts=10**12)}, "plain"),
        "create-time-a-day-old": ({"body": text_message(ts=TS - 86_400)}, "plain"),
        "unknown-msg-type": ({"body": xml(ToUserName=ORIGINAL_ID, FromUserName=OPENID, CreateTime=TS, MsgType="evil")}, "plain"),
        "huge-content": ({"body": text_message("长" * 20_001)}, "plain"),
        "utf16-internal-entity": ({"body": UTF16_ENTITY.encode("utf-16")}, "plain"),
        "utf8-internal-entity": ({"body": UTF16_ENTITY.replace("UTF-16", "UTF-8")}, "plain"),
        "bad-nonce": ({"body": text_message(), "nonce": "1 OR 1=1"}, "plain"),
    }


HOSTILE = list(hostile_pushes(OfficialAccount(wechat_id="shop")))


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_push_is_refused_and_stores_nothing(client, account, name):
    kwargs, mode = hostile_pushes(account)[name]
    account.callback_mode = mode
    account.save()
    AgentFactory(official_account=account, kf_account=f"alice@{account.wechat_id}")
    before = snapshot(account)
    response = post(client, account, **kwargs)
    assert 400 <= response.status_code < 500, response.content
    assert snapshot(account) == before


@pytest.mark.parametrize("same_body", [True, False], ids=["same-body", "other-body"])
@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_replayed_push_is_refused_and_stores_nothing(client, account, same_body, mode):
    account.callback_mode = mode
    account.save()
    assert post(client, account, text_message("第一条"), nonce="424242", mode=mode).status_code == 200
    before = snapshot(account)
    body = text_message("第一条") if same_body else text_message("伪造的", msg_id="1")
    response = post(client, account, body, nonce="424242", mode=mode)
    assert response.status_code == 403
    assert b"received before" in response.content
    assert snapshot(account) == before


def test_the_same_nonce_at_another_timestamp_is_a_new_push(client, account):
    assert post(client, account, text_message("一"), nonce="7", ts=TS).status_code == 200
    assert post(client, account, text_message("二", msg_id="2", ts=TS + 1), nonce="7", ts=TS + 1).status_code == 200
    assert MessageRecord.objects.count() == 2


def test_a_nonce_is_pruned_once_its_timestamp_is_refused_anyway(client, account, monkeypatch):
    post(client, account, text_message(), nonce="11")
    monkeypatch.setattr(callback, "_now", lambda: TS + 301)
    post(client, account, text_message("later", msg_id="9", ts=TS + 301), nonce="12", ts=TS + 301)
    assert list(CallbackNonce.objects.values_list("nonce", flat=True)) == ["12"]


def test_a_push_that_fails_leaves_its_nonce_for_wechats_retry(client, account, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    client.raise_request_exception = False
    monkeypatch.setattr(callback, "callback_message_record", broken)
    assert post(client, account, text_message(), nonce="31").status_code == 500
    monkeypatch.undo()
    monkeypatch.setattr(callback, "_now", lambda: TS)
    assert post(client, account, text_message(), nonce="31").status_code == 200
    assert MessageRecord.objects.count() == 1


@pytest.mark.parametrize("mode", ["compat", "safe"])
def test_an_encrypted_push_without_msg_signature_is_refused(client, account, mode):
    account.callback_mode = mode
    account.save()
    ts, nonce = str(TS), "77"
    encrypted = WeChatCrypto(TOKEN, AES_KEY, account.appid).encrypt(text_message())
    query = f"signature={sha1_signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}&encrypt_type=aes"
    response = client.post(f"{url(account)}?{query}", data=xml(ToUserName=ORIGINAL_ID, Encrypt=encrypted).encode(), content_type="text/xml")
    assert response.status_code == 403
    assert not MessageRecord.objects.exists()


def test_a_compatible_mode_account_still_takes_a_plaintext_push(client, account):
    account.callback_mode = OfficialAccount.CallbackMode.COMPAT
    account.save()
    assert post(client, account, text_message("明文")).status_code == 200
    assert MessageRecord.objects.get().text == "明文"


def test_a_stale_url_verification_is_refused(client, account):
    ts, nonce = str(TS - 3600), "5"
    response = client.get(url(account), {"signature": sha1_signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce, "echostr": "<b>hi</b>"})
    assert response.status_code == 403
    assert b"<b>" not in response.content


# --------------------------------------------------------------------------- the emulator pushing for real


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_the_emulator_verifies_and_pushes_to_the_live_receiver(emulator, kf_account_row, live_server, mode):
    kf_account_row.callback_mode = mode
    kf_account_row.save()
    url = f"{live_server.url}/wechat/callback/{kf_account_row.appid}/"
    emulator.control("set_callback", url=url, mode=mode)
    assert emulator.control("verify_callback_url")["ok"] is True

    alice, bob = emulator.bound_agent("alice"), emulator.bound_agent("bob")
    openid = emulator.customer(text="你好，想咨询退货")
    emulator.control("agent_accept", kf_account=alice, openid=openid)
    emulator.control("agent_transfer", openid=openid, to_kf_account=bob)
    emulator.control("customer_event", openid=openid, event="menu_click")
    emulator.control("flush_callbacks")

    deliveries = emulator.control("callbacks")["callbacks"]
    assert [(d["kind"], d["status"], d["response"]) for d in deliveries] == [
        ("message", 200, "success"),
        ("kf_create_session", 200, "success"),
        ("kf_switch_session", 200, "success"),
        ("CLICK", 200, "success"),
    ]
    records = list(MessageRecord.objects.order_by("id").values_list("opercode", "worker", "text", "source"))
    assert records == [
        (2001, "", "你好，想咨询退货", "callback"),
        (1001, alice, "", "callback"),
        (1003, bob, "", "callback"),
    ]
    session = KfSession.objects.get(customer__openid=openid)
    assert (session.state, session.agent.kf_account) == ("open", bob)
    # The message's grant (5 sends, 48 h); the click's own 3 sends for a minute come on
    # top of it at WeChat, and are not the 48 h window compared here.
    wechat_window = emulator.state.customer(appid=emulator.appid, openid=openid)["message_grant"]
    customer = Customer.objects.get(openid=openid)
    assert customer.window_remaining == wechat_window["remaining"] == 5
    # WeChat pushes whole seconds; its own clock has fractions.
    assert customer.window_expires_at.timestamp() == int(wechat_window["expires_at"])


def test_archived_callbacks_match_wechats_own_records(emulator, kf_account_row, live_server):
    """The history sync later finds the same records under the same natural key."""
    kf_account_row.callback_mode = OfficialAccount.CallbackMode.SAFE
    kf_account_row.save()
    emulator.control("set_callback", url=f"{live_server.url}/wechat/callback/{kf_account_row.appid}/", mode="safe")
    alice = emulator.bound_agent("alice")
    openid = emulator.customer(text="订单什么时候到？")
    emulator.control("agent_accept", kf_account=alice, openid=openid)
    from accounts.clients import wechat_client_for

    wechat_client_for(kf_account_row).close_session(alice, openid)
    emulator.control("flush_callbacks")

    wechat = emulator.control("records")["records"]
    wechat_keys = {
        (r["time"], bytes(record_digest(r["worker"], r["openid"], r["opercode"], r["text"])))
        for r in wechat
        if r["opercode"] != 1000  # "queued" has no push
    }
    ours = {(int(r.time.timestamp()), bytes(r.digest)) for r in MessageRecord.objects.all()}
    assert ours == wechat_keys
    assert len(ours) == 3

"""Message pushes to the callback URL: signatures and encryption in all three modes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
import requests

from kfadmin.emulator.callbacks import build_xml, encrypt_message, sha1_signature

from .util import Receiver, decrypt_push, sha1_hex, start_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = start_receiver()
    yield server
    server.close()


def fields(xml: bytes | str) -> dict[str, str]:
    root = ET.fromstring(xml)
    return {child.tag: child.text or "" for child in root}


def pushed(emulator, receiver: Receiver, count: int) -> list:
    assert emulator.state.flush_callbacks(timeout=10)["flushed"]
    posts = receiver.posts()
    assert len(posts) == count, [p.body for p in posts]
    return posts


def check_signature(emulator, query: dict[str, str]) -> None:
    assert query["signature"] == sha1_hex(
        emulator.callback_token, query["timestamp"], query["nonce"]
    )


def test_the_documented_signature_vectors_hold():
    assert (
        sha1_signature("AAAAA", "1714036504", "1514711492")
        == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    )
    assert (
        sha1_signature("AAAAA", "1714037059", "486452656")
        == "899cf89e464efb63f54ddac96b0a0a235f53aa78"
    )
    assert (
        sha1_signature("2faf43d6343a802b6073aae5b3f2f109", "1606902086", "1246833592")
        == "ffb882ae55647757d3b807ff0e9b6098dfc2bc57"
    )


@pytest.mark.parametrize("size", [0, 1, 11, 12, 43, 44, 100])
def test_encryption_pads_to_32_byte_blocks_and_round_trips(size):
    key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    message = b"x" * size
    encrypted = encrypt_message(message, encoding_aes_key=key, appid="wxabc")
    assert decrypt_push(encrypted, key, "wxabc") == message


def test_a_plain_mode_push_is_signed_and_readable(emulator, receiver):
    emulator.control("set_callback", url=receiver.url, mode="plain")
    result = emulator.state.customer_writes(openid="oPlainUser", text="你好 & <谢谢>")
    (post,) = pushed(emulator, receiver, 1)
    assert post.path == "/wechat/callback"
    check_signature(emulator, post.query)
    assert post.query["openid"] == "oPlainUser"
    assert "encrypt_type" not in post.query and "msg_signature" not in post.query
    assert fields(post.body) == {
        "ToUserName": emulator.original_id,
        "FromUserName": "oPlainUser",
        "CreateTime": post.query["timestamp"],
        "MsgType": "text",
        "Content": "你好 & <谢谢>",
        "MsgId": str(result["msgid"]),
    }


def test_a_safe_mode_push_is_encrypted_with_a_valid_msg_signature(emulator, receiver):
    emulator.state.set_callback(url=receiver.url, mode="safe")
    emulator.state.customer_writes(openid="oSafeUser", text="我要退款")
    (post,) = pushed(emulator, receiver, 1)
    check_signature(emulator, post.query)
    assert post.query["encrypt_type"] == "aes"
    outer = fields(post.body)
    assert set(outer) == {"ToUserName", "Encrypt"}
    assert outer["ToUserName"] == emulator.original_id
    assert post.query["msg_signature"] == sha1_hex(
        emulator.callback_token, post.query["timestamp"], post.query["nonce"], outer["Encrypt"]
    )
    inner = fields(decrypt_push(outer["Encrypt"], emulator.encoding_aes_key, emulator.appid))
    assert inner["MsgType"] == "text"
    assert inner["Content"] == "我要退款"
    assert inner["FromUserName"] == "oSafeUser"


def test_a_compatible_mode_push_carries_plaintext_and_ciphertext(emulator, receiver):
    emulator.state.set_callback(url=receiver.url, mode="compat")
    emulator.state.customer_writes(openid="oCompat", text="hello")
    (post,) = pushed(emulator, receiver, 1)
    outer = fields(post.body)
    assert outer["Content"] == "hello"
    assert post.query["msg_signature"] == sha1_hex(
        emulator.callback_token, post.query["timestamp"], post.query["nonce"], outer["Encrypt"]
    )
    inner = fields(decrypt_push(outer["Encrypt"], emulator.encoding_aes_key, emulator.appid))
    assert {k: v for k, v in outer.items() if k != "Encrypt"} == inner


def test_session_events_are_pushed(emulator, receiver):
    anna = emulator.bound_agent("anna")
    bob = emulator.bound_agent("bob")
    openid = emulator.customer("oSessionUser")
    emulator.state.set_callback(url=receiver.url, mode="safe")
    emulator.post("/customservice/kfsession/create", {"kf_account": anna, "openid": openid})
    emulator.state.agent_transfer(openid=openid, to_kf_account=bob)
    emulator.post("/customservice/kfsession/close", {"kf_account": bob, "openid": openid})
    posts = pushed(emulator, receiver, 3)
    events = [
        fields(decrypt_push(fields(p.body)["Encrypt"], emulator.encoding_aes_key, emulator.appid))
        for p in posts
    ]
    assert [(e["MsgType"], e["Event"]) for e in events] == [
        ("event", "kf_create_session"),
        ("event", "kf_switch_session"),
        ("event", "kf_close_session"),
    ]
    assert events[0]["KfAccount"] == anna
    assert (events[1]["FromKfAccount"], events[1]["ToKfAccount"]) == (anna, bob)
    assert events[2]["KfAccount"] == bob
    assert all(e["FromUserName"] == openid for e in events)


def test_an_agent_accepting_pushes_kf_create_session(emulator, receiver):
    anna = emulator.bound_agent("anna")
    emulator.customer("oWaiting")
    emulator.state.set_callback(url=receiver.url)
    emulator.state.agent_accept(kf_account=anna)
    (post,) = pushed(emulator, receiver, 1)
    assert fields(post.body)["Event"] == "kf_create_session"


@pytest.mark.parametrize(
    ("event", "wire", "extra"),
    [
        ("follow", "subscribe", {}),
        ("menu_click", "CLICK", {"EventKey": "CONTACT"}),
        ("scan", "SCAN", {"EventKey": "CONTACT", "Ticket": "emu_ticket_CONTACT"}),
        ("unfollow", "unsubscribe", {}),
    ],
)
def test_customer_events_are_pushed(emulator, receiver, event, wire, extra):
    emulator.state.set_callback(url=receiver.url)
    emulator.state.customer_event(openid="oEvents", event=event, event_key="CONTACT")
    (post,) = pushed(emulator, receiver, 1)
    got = fields(post.body)
    assert got["Event"] == wire
    for key, value in extra.items():
        assert got[key] == value


def test_messages_inside_a_session_go_to_the_kf_system_not_the_callback(emulator, receiver):
    anna = emulator.bound_agent("anna")
    openid = emulator.customer("oServed")
    emulator.state.agent_accept(kf_account=anna)
    emulator.state.set_callback(url=receiver.url)
    emulator.state.customer_writes(openid=openid, text="still there?")
    pushed(emulator, receiver, 0)
    emulator.state.set_callback(url=receiver.url, push_session_messages=True)
    emulator.state.customer_writes(openid=openid, text="hello?")
    (post,) = pushed(emulator, receiver, 1)
    assert fields(post.body)["Content"] == "hello?"


@pytest.mark.parametrize("msgtype", ["image", "voice", "video"])
def test_media_messages_are_pushed_with_a_media_id(emulator, receiver, msgtype):
    emulator.state.set_callback(url=receiver.url)
    emulator.state.customer_writes(openid="oMedia", msgtype=msgtype)
    (post,) = pushed(emulator, receiver, 1)
    got = fields(post.body)
    assert got["MsgType"] == msgtype
    assert got["MediaId"]
    if msgtype == "image":
        picture = requests.get(got["PicUrl"], timeout=10)
        assert picture.headers["Content-Type"] == "image/jpeg"
        assert picture.content.startswith(b"\xff\xd8\xff")


def test_nothing_is_pushed_without_a_callback_url(emulator, receiver):
    emulator.customer("oNobodyListens")
    assert emulator.state.callbacks() == []
    assert receiver.requests == []


def test_a_failed_push_is_logged_not_raised(emulator, receiver):
    receiver.status = 500
    emulator.state.set_callback(url=receiver.url)
    emulator.customer("oFailing")
    emulator.state.flush_callbacks()
    (delivery,) = emulator.state.callbacks()
    assert delivery.ok is False and delivery.status == 500
    emulator.state.set_callback(url="http://127.0.0.1:9/unreachable")
    emulator.customer("oFailing")
    emulator.state.flush_callbacks()
    assert emulator.state.callbacks()[-1].ok is False
    assert emulator.control("callbacks")["callbacks"][-1]["ok"] is False


def test_the_url_check_gets_its_echostr_back(emulator, receiver):
    emulator.state.set_callback(url=receiver.url)
    result = emulator.control("verify_callback_url")
    assert result["ok"] is True
    (request,) = receiver.requests
    assert request.method == "GET"
    check_signature(emulator, request.query)
    assert request.query["echostr"] == result["echostr"]


def test_cdata_sections_survive_a_closing_bracket_sequence():
    xml = build_xml([("Content", "a]]>b"), ("CreateTime", 1)])
    assert fields(xml) == {"Content": "a]]>b", "CreateTime": "1"}

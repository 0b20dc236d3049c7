"""Callback helpers (wechat-kf-api.md §7): signatures against the published vectors,
safe-mode AES round trips and tamper detection, safe XML parsing, kf events and the
transfer_customer_service reply."""

from __future__ import annotations

import base64
import hashlib
import struct
import xml.etree.ElementTree as ET

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kfadmin.wechat import (
    WeChatCallbackError,
    WeChatCrypto,
    check_signature,
    check_timestamp,
    echo_for_verification,
    msg_signature,
    parse_message,
    parse_xml,
    transfer_customer_service_reply,
)

TOKEN = "2faf43d6343a802b6073aae5b3f2f109"
AES_KEY = "jxAko083VoJ3lcPXJWzcGJ0M1tFVLgdD6qAq57GJY1U"
APPID = "wx1def0e9e5891b338"
PREFIX = bytes(range(16))


@pytest.fixture
def crypto() -> WeChatCrypto:
    return WeChatCrypto(TOKEN, AES_KEY, APPID)


def reference_encrypt(message: bytes, *, appid: str = APPID, length: int | None = None) -> str:
    """An independent encoder for the documented layout, using cryptography's own
    PKCS#7 (256-bit = 32-byte block), to check the client against."""
    key = base64.b64decode(AES_KEY + "=")
    plain = PREFIX + struct.pack(">I", len(message) if length is None else length) + message
    plain += appid.encode()
    padder = padding.PKCS7(256).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


# ------------------------------------------------------------------ signatures


@pytest.mark.parametrize(
    ("token", "timestamp", "nonce", "signature"),
    [
        ("AAAAA", "1714036504", "1514711492", "f464b24fc39322e44b38aa78f5edd27bd1441696"),
        ("AAAAA", "1714037059", "486452656", "899cf89e464efb63f54ddac96b0a0a235f53aa78"),
        (TOKEN, "1606902086", "1246833592", "ffb882ae55647757d3b807ff0e9b6098dfc2bc57"),
    ],
)
def test_it_checks_the_published_signature_vectors(token, timestamp, nonce, signature):
    assert check_signature(token, signature, timestamp, nonce) is True
    assert check_signature(token, signature.upper(), timestamp, nonce) is True
    assert check_signature(token, signature[:-1] + "0", timestamp, nonce) is False
    assert check_signature(token + "x", signature, timestamp, nonce) is False
    assert check_signature(token, "", timestamp, nonce) is False


def test_it_echoes_echostr_only_for_a_valid_verification():
    args = ("AAAAA", "f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036504", "1514711492")

    assert echo_for_verification(*args, "4375120948345356249") == "4375120948345356249"
    assert echo_for_verification("BBBBB", *args[1:], "4375120948345356249") is None


def test_msg_signature_sorts_all_four_values():
    expected = hashlib.sha1("".join(sorted([TOKEN, "1409304348", "xxxxxx", "ENC"])).encode())

    assert msg_signature(TOKEN, "1409304348", "xxxxxx", "ENC") == expected.hexdigest()


# --------------------------------------------------------------------- safe mode


@pytest.mark.parametrize(
    "message",
    [
        "<xml><Content><![CDATA[你好，客服]]></Content></xml>",
        "",
        "x" * 31,
        "x" * 32,
        "x" * 33,
        "y" * 26,  # 16 + 4 + 26 + 18 = 64: a whole extra block of padding
        "中" * 500,
    ],
    ids=["chinese", "empty", "31-bytes", "32-bytes", "33-bytes", "block-aligned", "long"],
)
def test_encrypt_then_decrypt_round_trips(crypto: WeChatCrypto, message: str):
    encrypted = crypto.encrypt(message)

    assert len(base64.b64decode(encrypted)) % 32 == 0
    assert crypto.decrypt(encrypted) == message.encode()


@pytest.mark.parametrize("size", [0, 1, 13, 14, 15, 26, 31, 32, 33, 100])
def test_it_matches_an_independent_encoder_byte_for_byte(crypto: WeChatCrypto, size: int):
    message = bytes((65 + i % 26) for i in range(size))

    ours = crypto.encrypt(message, random_prefix=PREFIX)

    assert ours == reference_encrypt(message)
    assert crypto.decrypt(reference_encrypt(message)) == message


def test_a_block_aligned_plaintext_gets_a_full_block_of_32_padding_bytes(crypto: WeChatCrypto):
    key = base64.b64decode(AES_KEY + "=")
    ciphertext = base64.b64decode(crypto.encrypt(b"y" * 26, random_prefix=PREFIX))
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(ciphertext) + decryptor.finalize()

    assert len(plain) == 96
    assert plain[-32:] == bytes([32]) * 32


def test_encrypt_message_builds_a_signed_reply_that_decrypts(crypto: WeChatCrypto):
    inner = (
        "<xml><ToUserName><![CDATA[oUser]]></ToUserName><Content><![CDATA[回复]]></Content></xml>"
    )

    reply = crypto.encrypt_message(inner, nonce="nonce123", timestamp="1714037059")

    root = ET.fromstring(reply)
    assert [child.tag for child in root] == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
    encrypted = root.findtext("Encrypt")
    assert root.findtext("TimeStamp") == "1714037059"
    assert root.findtext("Nonce") == "nonce123"
    assert root.findtext("MsgSignature") == msg_signature(
        TOKEN, "1714037059", "nonce123", encrypted
    )
    assert (
        crypto.decrypt_message(reply, root.findtext("MsgSignature"), "1714037059", "nonce123")
        == inner
    )


def test_it_decrypts_a_safe_mode_push(crypto: WeChatCrypto):
    inner = (
        "<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]>"
        "</FromUserName><CreateTime>1714037059</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[在吗？]]></Content><MsgId>24567</MsgId></xml>"
    )
    encrypted = reference_encrypt(inner.encode())
    body = f"<xml><ToUserName><![CDATA[gh_123]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    signature = msg_signature(TOKEN, "1714037059", "486452656", encrypted)

    xml = crypto.decrypt_message(body, signature, "1714037059", "486452656")

    assert xml == inner
    assert parse_message(xml).content == "在吗？"


def test_a_tampered_ciphertext_fails_the_msg_signature(crypto: WeChatCrypto):
    encrypted = crypto.encrypt("<xml/>")
    signature = msg_signature(TOKEN, "1", "n", encrypted)
    raw = bytearray(base64.b64decode(encrypted))
    raw[0] ^= 1
    tampered = base64.b64encode(bytes(raw)).decode()
    body = f"<xml><Encrypt><![CDATA[{tampered}]]></Encrypt></xml>"

    with pytest.raises(WeChatCallbackError, match="msg_signature"):
        crypto.decrypt_message(body, signature, "1", "n")


def test_a_wrong_signature_timestamp_or_nonce_is_rejected(crypto: WeChatCrypto):
    reply = crypto.encrypt_message("<xml/>", nonce="n1", timestamp="100")
    signature = ET.fromstring(reply).findtext("MsgSignature")

    for args in [("0" * 40, "100", "n1"), (signature, "101", "n1"), (signature, "100", "n2")]:
        with pytest.raises(WeChatCallbackError, match="msg_signature"):
            crypto.decrypt_message(reply, *args)


def test_a_tampered_last_block_fails_padding_or_appid_checks(crypto: WeChatCrypto):
    raw = bytearray(base64.b64decode(crypto.encrypt("hello", random_prefix=PREFIX)))
    raw[-17] ^= 0x55  # flips bytes of the final plaintext block (CBC)

    with pytest.raises(WeChatCallbackError):
        crypto.decrypt(base64.b64encode(bytes(raw)).decode())


def test_a_message_for_another_appid_is_rejected(crypto: WeChatCrypto):
    other = WeChatCrypto(TOKEN, AES_KEY, "wxaaaaaaaaaaaaaaaa")

    with pytest.raises(WeChatCallbackError, match="different AppID"):
        crypto.decrypt(other.encrypt("<xml/>"))


def test_a_message_encrypted_with_another_key_is_rejected(crypto: WeChatCrypto):
    other = WeChatCrypto(TOKEN, "A" * 43, APPID)

    with pytest.raises(WeChatCallbackError):
        crypto.decrypt(other.encrypt("<xml>" + "z" * 40 + "</xml>", random_prefix=PREFIX))


def test_a_declared_length_past_the_end_is_rejected(crypto: WeChatCrypto):
    with pytest.raises(WeChatCallbackError, match="length"):
        crypto.decrypt(reference_encrypt(b"abc", length=5000))


def test_a_wrong_declared_length_leaves_the_wrong_appid(crypto: WeChatCrypto):
    with pytest.raises(WeChatCallbackError, match="AppID"):
        crypto.decrypt(reference_encrypt(b"abcdef", length=3))


@pytest.mark.parametrize(
    ("encrypted", "message"),
    [
        ("not base64 at all!", "base64"),
        (base64.b64encode(b"0123456789").decode(), "AES blocks"),
        ("", "AES blocks"),
    ],
)
def test_malformed_ciphertext_is_rejected(crypto: WeChatCrypto, encrypted, message):
    with pytest.raises(WeChatCallbackError, match=message):
        crypto.decrypt(encrypted)


def test_a_body_without_encrypt_is_rejected(crypto: WeChatCrypto):
    with pytest.raises(WeChatCallbackError, match="Encrypt"):
        crypto.decrypt_message("<xml><ToUserName>gh</ToUserName></xml>", "sig", "1", "n")


@pytest.mark.parametrize("key", ["short", "A" * 44, "!" * 43])
def test_a_bad_encoding_aes_key_is_refused(key):
    with pytest.raises(WeChatCallbackError, match="EncodingAESKey"):
        WeChatCrypto(TOKEN, key, APPID)


def test_the_crypto_repr_hides_key_and_token(crypto: WeChatCrypto):
    assert AES_KEY not in repr(crypto) and TOKEN not in repr(crypto)


# ------------------------------------------------------------------- safe XML

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<xml><ToUserName>&lol2;</ToUserName><FromUserName>o</FromUserName><MsgType>text</MsgType></xml>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><Content>&xxe;</Content></xml>"""

INTERNAL_ENTITY = """<?xml version="1.0" encoding="UTF-16"?>
<!DOCTYPE xml [<!ENTITY who "oia2TjuEGTNoeX76QEjQNrcURxG8">]>
<xml><ToUserName>gh_7f083739789a</ToUserName><FromUserName>&who;</FromUserName>
<CreateTime>1399197672</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>"""


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        XXE,
        '<!DOCTYPE xml SYSTEM "http://example.com/x.dtd"><xml/>',
        "<!DOCTYPE xml><xml/>",
        INTERNAL_ENTITY.encode("utf-16"),
        INTERNAL_ENTITY.replace("UTF-16", "UTF-16BE").encode("utf-16-be"),
        INTERNAL_ENTITY.replace("UTF-16", "ISO-8859-1").encode("latin-1"),
    ],
    ids=["laughs", "xxe", "external-dtd", "empty-doctype", "utf-16", "utf-16be", "latin-1"],
)
def test_any_dtd_is_refused_in_any_encoding(body):
    with pytest.raises(WeChatCallbackError, match="DOCTYPE or ENTITY"):
        parse_message(body)


@pytest.mark.parametrize(
    "body", ["<!ENTITY x 'y'><xml/>", INTERNAL_ENTITY.replace("UTF-16", "UTF-32").encode("utf-32")],
    ids=["entity-outside-doctype", "utf-32"],
)
def test_what_expat_cannot_read_is_refused_as_not_xml(body):
    with pytest.raises(WeChatCallbackError, match="well-formed"):
        parse_message(body)


def test_a_doctype_is_refused_inside_a_decrypted_push_too(crypto: WeChatCrypto):
    encrypted = crypto.encrypt(XXE)
    body = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    xml = crypto.decrypt_message(body, msg_signature(TOKEN, "1", "n", encrypted), "1", "n")

    with pytest.raises(WeChatCallbackError, match="DOCTYPE"):
        parse_message(xml)


def test_a_doctype_in_the_outer_body_is_refused_before_decrypting(crypto: WeChatCrypto):
    with pytest.raises(WeChatCallbackError, match="DOCTYPE"):
        crypto.decrypt_message(BILLION_LAUGHS, "sig", "1", "n")


GOOD = {
    "ToUserName": "gh_7f083739789a",
    "FromUserName": "oia2TjuEGTNoeX76QEjQNrcURxG8",
    "CreateTime": "1399197672",
    "MsgType": "text",
    "Content": "hi",
}


def body_with(**changes: str | None) -> str:
    values = {**GOOD, **changes}
    return "<xml>" + "".join(
        f"<{tag}><![CDATA[{value}]]></{tag}>" for tag, value in values.items() if value is not None
    ) + "</xml>"


def test_a_push_of_the_right_shape_is_accepted():
    assert parse_message(body_with()).content == "hi"
    assert parse_message(body_with(FromUserName="o-_9" + "a" * 60)).from_user.startswith("o-_9")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"FromUserName": 'o/x"><svg onload=alert(1)>'}, "FromUserName is not an openid"),
        ({"FromUserName": "o" * 65}, "FromUserName is not an openid"),
        ({"FromUserName": "o6_bmjrPTlm6 2sgVt7hMZOPfL2M"}, "FromUserName is not an openid"),
        ({"ToUserName": "gh_<b>"}, "ToUserName is not an original ID"),
        ({"CreateTime": None}, "lacks CreateTime"),
        ({"CreateTime": "-5"}, "non-numeric CreateTime"),
        ({"CreateTime": "99999999999"}, "CreateTime is out of range"),
        ({"CreateTime": "0"}, "CreateTime is out of range"),
        ({"MsgType": "script"}, "unknown MsgType"),
        ({"Content": None}, "lacks Content"),
        ({"Content": "长" * 20_001}, "Content is longer"),
        ({"PicUrl": "x" * 2_049}, "PicUrl is longer"),
        ({"MsgId": "12ab"}, "MsgId is not a message id"),
        ({"MsgType": "event", "Event": None}, "lacks Event"),
        ({"MsgType": "event", "Event": "kf<close>"}, "Event is not an event name"),
        ({"MsgType": "event", "Event": "kf_create_session"}, "lacks KfAccount"),
        ({"MsgType": "event", "Event": "kf_switch_session", "FromKfAccount": "a@shop"}, "lacks ToKfAccount"),
        ({"MsgType": "event", "Event": "kf_close_session", "KfAccount": "alice"}, "KfAccount is not a kf account"),
        ({"MsgType": "event", "Event": "kf_close_session", "KfAccount": "a@b@c"}, "KfAccount is not a kf account"),
        ({"MsgType": "event", "Event": "kf_close_session", "KfAccount": "<a>@shop"}, "KfAccount is not a kf account"),
        (
            {"MsgType": "event", "Event": "kf_close_session", "KfAccount": "a" * 40 + "@" + "b" * 30},
            "KfAccount is not a kf account",
        ),
    ],
)
def test_a_field_of_the_wrong_shape_is_refused(changes, message):
    with pytest.raises(WeChatCallbackError, match=message):
        parse_message(body_with(**changes))


@pytest.mark.parametrize(
    ("create_time", "ok"),
    [(1_000_000, True), (1_000_300, True), (1_000_301, False), (996_400, True), (996_399, False)],
)
def test_create_time_must_be_near_the_pushes_timestamp(create_time, ok):
    body = body_with(CreateTime=str(create_time))
    if ok:
        assert parse_message(body, timestamp=1_000_000).create_time == create_time
    else:
        with pytest.raises(WeChatCallbackError, match="CreateTime is out of range"):
            parse_message(body, timestamp=1_000_000)


@pytest.mark.parametrize(
    ("timestamp", "ok"),
    [("1000000", True), ("1000300", True), ("999700", True), ("1000301", False), ("999699", False),
     ("", False), ("-1", False), ("1e6", False), ("12345678901", False)],
)
def test_a_push_timestamp_must_be_within_five_minutes(timestamp, ok):
    if ok:
        assert check_timestamp(timestamp, now=1_000_000.0) == int(timestamp)
    else:
        with pytest.raises(WeChatCallbackError):
            check_timestamp(timestamp, now=1_000_000.0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<xml><ToUserName>", "well-formed"),
        ("not xml", "well-formed"),
        ("<root><MsgType>text</MsgType></root>", "<root>"),
        ("<xml><ToUserName>gh</ToUserName><MsgType>text</MsgType></xml>", "FromUserName"),
        (
            "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName>"
            "<CreateTime>soon</CreateTime><MsgType>text</MsgType></xml>",
            "CreateTime",
        ),
    ],
)
def test_malformed_pushes_are_rejected_with_a_clear_error(body, message):
    with pytest.raises(WeChatCallbackError, match=message):
        parse_message(body)


# ------------------------------------------------------------------- messages


def push(msg_type: str, extra: str) -> str:
    return (
        "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>"
        "<FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>"
        f"<CreateTime>1399197672</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{extra}</xml>"
    )


def test_it_parses_a_text_message():
    message = parse_message(
        push("text", "<Content><![CDATA[你好 <b>]]></Content><MsgId>1234567890123456</MsgId>")
    )

    assert (message.to_user, message.from_user) == (
        "gh_7f083739789a",
        "oia2TjuEGTNoeX76QEjQNrcURxG8",
    )
    assert (message.create_time, message.msg_type) == (1399197672, "text")
    assert (message.content, message.msg_id) == ("你好 <b>", "1234567890123456")
    assert message.is_event is False and message.is_menu_click is False
    assert message["Content"] == "你好 <b>"


def test_it_parses_media_messages():
    image = parse_message(
        push(
            "image",
            "<PicUrl><![CDATA[http://x/p.jpg]]></PicUrl><MediaId><![CDATA[M1]]></MediaId><MsgId>1</MsgId>",
        )
    )
    voice = parse_message(
        push(
            "voice",
            "<MediaId><![CDATA[M2]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯]]></Recognition><MsgId>2</MsgId>",
        )
    )
    video = parse_message(
        push(
            "video",
            "<MediaId><![CDATA[M3]]></MediaId><ThumbMediaId><![CDATA[T3]]></ThumbMediaId><MsgId>3</MsgId>",
        )
    )

    assert (image.msg_type, image.pic_url, image.media_id) == ("image", "http://x/p.jpg", "M1")
    assert (voice.media_id, voice.format, voice.recognition) == ("M2", "amr", "腾讯")
    assert (video.media_id, video.thumb_media_id) == ("M3", "T3")


@pytest.mark.parametrize(
    ("event", "extra", "expected"),
    [
        (
            "kf_create_session",
            "<KfAccount><![CDATA[test1@test]]></KfAccount>",
            {"kf_account": "test1@test"},
        ),
        (
            "kf_close_session",
            "<KfAccount><![CDATA[test1@test]]></KfAccount>",
            {"kf_account": "test1@test"},
        ),
        (
            "kf_switch_session",
            "<FromKfAccount><![CDATA[test1@test]]></FromKfAccount><ToKfAccount><![CDATA[test2@test]]></ToKfAccount>",
            {"from_kf_account": "test1@test", "to_kf_account": "test2@test"},
        ),
        ("subscribe", "<EventKey><![CDATA[]]></EventKey>", {"event_key": ""}),
        ("CLICK", "<EventKey><![CDATA[MENU_KEY]]></EventKey>", {"event_key": "MENU_KEY"}),
    ],
)
def test_it_parses_events(event, extra, expected):
    message = parse_message(push("event", f"<Event><![CDATA[{event}]]></Event>{extra}"))

    assert message.is_event is True
    assert message.event == event
    for attribute, value in expected.items():
        assert getattr(message, attribute) == value


def test_it_parses_a_menu_option_tap_with_bizmsgmenuid():
    message = parse_message(
        push(
            "text",
            "<Content><![CDATA[满意]]></Content><MsgId>1</MsgId><bizmsgmenuid>101</bizmsgmenuid>",
        )
    )

    assert message.is_menu_click is True
    assert (message.content, message.bizmsgmenuid) == ("满意", "101")


def test_unknown_elements_stay_reachable_by_wire_name():
    message = parse_message(
        push(
            "event",
            "<Event>SCAN</Event><Ticket>TICKET</Ticket><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo>",
        )
    )

    assert message["Ticket"] == "TICKET"
    assert message["ScanCodeInfo.ScanType"] == "qrcode"
    assert "Ticket" in message and len(message) >= 6


# --------------------------------------------------------------------- replies


def test_it_builds_a_transfer_customer_service_reply():
    reply = transfer_customer_service_reply("oUser", "gh_account", create_time=1399197672)

    root = ET.fromstring(reply)
    assert [child.tag for child in root] == ["ToUserName", "FromUserName", "CreateTime", "MsgType"]
    assert root.findtext("ToUserName") == "oUser"
    assert root.findtext("FromUserName") == "gh_account"
    assert root.findtext("CreateTime") == "1399197672"
    assert root.findtext("MsgType") == "transfer_customer_service"
    assert "<![CDATA[oUser]]>" in reply


def test_a_transfer_reply_can_name_the_agent():
    reply = transfer_customer_service_reply(
        "oUser", "gh_account", kf_account="test1@test", create_time=1
    )

    assert ET.fromstring(reply).findtext("TransInfo/KfAccount") == "test1@test"


def test_a_transfer_reply_defaults_create_time_to_now():
    import time

    reply = transfer_customer_service_reply("oUser", "gh_account")

    assert abs(int(ET.fromstring(reply).findtext("CreateTime")) - time.time()) < 5


def test_cdata_terminators_in_values_cannot_break_the_reply():
    reply = transfer_customer_service_reply("o]]><evil/>", "gh", create_time=1)

    root = ET.fromstring(reply)
    assert root.findtext("ToUserName") == "o]]><evil/>"
    assert root.find("evil") is None


def test_a_transfer_reply_can_be_encrypted_for_safe_mode(crypto: WeChatCrypto):
    reply = transfer_customer_service_reply("oUser", "gh_account", create_time=1)

    wrapped = crypto.encrypt_message(reply, nonce="n", timestamp=1)
    signature = ET.fromstring(wrapped).findtext("MsgSignature")

    assert parse_xml(crypto.decrypt_message(wrapped, signature, "1", "n"))["MsgType"] == (
        "transfer_customer_service"
    )

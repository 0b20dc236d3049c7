"""Helpers for WeChat's message push (the callback URL), wechat-kf-api.md §7.

- URL verification: :func:`check_signature` (sha1 over the sorted token, timestamp
  and nonce, compared in constant time).
- Safe mode: :class:`WeChatCrypto` (AES-256-CBC, IV = key[:16], PKCS#7 with a
  32-byte block, plaintext ``random16 | len_be32 | msg | appid``) and
  :func:`msg_signature`.
- Freshness: :func:`check_timestamp` (a push's timestamp within 5 minutes of now).
- Parsing pushes: :func:`parse_message`, through defusedxml with every DTD refused
  (no XXE, no billion laughs, in any encoding), then every field checked like a
  form: pattern, length, allowed values, range.
- Passive replies: :func:`transfer_customer_service_reply`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import defusedxml
import defusedxml.ElementTree as SafeET
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import WeChatCallbackError

__all__ = [
    "MAX_CLOCK_SKEW",
    "CallbackMessage",
    "WeChatCrypto",
    "check_signature",
    "check_timestamp",
    "echo_for_verification",
    "msg_signature",
    "parse_message",
    "parse_xml",
    "sha1_signature",
    "transfer_customer_service_reply",
]

# Pushes are a few KiB; anything far larger is not from WeChat.
MAX_XML_BYTES = 1024 * 1024
_PKCS7_BLOCK = 32
_RANDOM_PREFIX = 16
# How far a push's timestamp may be from our clock, either way: a URL that WeChat
# once called (access logs, proxies keep them) is worthless after this.
MAX_CLOCK_SKEW = 300


# ----------------------------------------------------------------- signatures


def sha1_signature(*parts: str) -> str:
    """WeChat's signature: sha1 of the parts sorted lexicographically and joined."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    """Verify the ``signature`` query parameter of a push or of URL verification."""
    expected = sha1_signature(token, str(timestamp), str(nonce))
    return hmac.compare_digest(expected.encode("ascii"), str(signature).lower().encode("utf-8"))


def check_timestamp(timestamp: str, *, now: float, skew: int = MAX_CLOCK_SKEW) -> int:
    """The push's ``timestamp`` query parameter as an int, if within ``skew`` seconds
    of ``now`` either way; raises :class:`WeChatCallbackError` otherwise."""
    if not re.fullmatch(r"[0-9]{1,10}", str(timestamp)):
        raise WeChatCallbackError(None, "The push has no valid timestamp.")
    value = int(timestamp)
    if abs(value - now) > skew:
        raise WeChatCallbackError(
            None, f"The push's timestamp is more than {skew // 60} minutes off; refused."
        )
    return value


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """The ``msg_signature`` of a safe-mode push or reply."""
    return sha1_signature(token, str(timestamp), str(nonce), encrypt)


# ----------------------------------------------------------------------- XML


def _cdata(value: str) -> str:
    # "]]>" cannot appear inside CDATA; split it across two sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def parse_xml(body: str | bytes) -> dict[str, str]:
    """Parse a push or reply into ``{tag: text}`` for the children of ``<xml>``.

    defusedxml refuses any DTD (so any entity declaration) as expat meets it, after
    decoding, so a UTF-16 body cannot slip one past; WeChat never sends a DTD.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_XML_BYTES:
        raise WeChatCallbackError(None, "The callback body is too large to be a WeChat push.")
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise WeChatCallbackError(
            None, "The callback body contains a DOCTYPE or ENTITY declaration; refused."
        ) from None
    except ET.ParseError as exc:
        raise WeChatCallbackError(
            None, f"The callback body is not well-formed XML ({exc})."
        ) from None
    if root.tag != "xml":
        raise WeChatCallbackError(None, f"The callback root element is <{root.tag}>, not <xml>.")
    values: dict[str, str] = {}
    for child in root:
        if len(child):
            # Nested blocks (TransInfo, ScanCodeInfo, ...) are flattened one level as
            # "Parent.Child" so nothing is silently dropped.
            for grandchild in child:
                values[f"{child.tag}.{grandchild.tag}"] = grandchild.text or ""
        values[child.tag] = child.text or ""
    return values


# ---------------------------------------------------------------- safe mode


class WeChatCrypto:
    """Encrypts replies and decrypts pushes of an official account in safe mode."""

    def __init__(self, token: str, encoding_aes_key: str, appid: str):
        if len(encoding_aes_key) != 43:
            raise WeChatCallbackError(
                None, "The EncodingAESKey must be exactly 43 characters long."
            )
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error:
            raise WeChatCallbackError(
                None, "The EncodingAESKey is not valid base64 (letters and digits only)."
            ) from None
        if len(key) != 32:
            raise WeChatCallbackError(None, "The EncodingAESKey does not decode to 32 bytes.")
        self._token = token
        self._key = key
        self.appid = appid

    def __repr__(self) -> str:
        return f"WeChatCrypto(appid={self.appid!r})"

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: str | bytes, random_prefix: bytes | None = None) -> str:
        """Base64 ciphertext of ``message`` (the value of an ``<Encrypt>`` element)."""
        body = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        prefix = os.urandom(_RANDOM_PREFIX) if random_prefix is None else random_prefix
        if len(prefix) != _RANDOM_PREFIX:
            raise ValueError("random_prefix must be 16 bytes")
        plain = prefix + struct.pack(">I", len(body)) + body + self.appid.encode("utf-8")
        pad = _PKCS7_BLOCK - len(plain) % _PKCS7_BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside a base64 ``<Encrypt>`` value, after checking padding,
        length and appid."""
        try:
            ciphertext = base64.b64decode(encrypted.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WeChatCallbackError(None, "The Encrypt value is not valid base64.") from None
        if not ciphertext or len(ciphertext) % 16:
            raise WeChatCallbackError(
                None, "The Encrypt value is not a whole number of AES blocks."
            )
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(ciphertext) + decryptor.finalize()

        pad = plain[-1]
        if not 1 <= pad <= _PKCS7_BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise WeChatCallbackError(
                None, "The decrypted push has invalid padding (wrong EncodingAESKey?)."
            )
        plain = plain[:-pad]
        if len(plain) < _RANDOM_PREFIX + 4:
            raise WeChatCallbackError(None, "The decrypted push is too short.")
        (length,) = struct.unpack(">I", plain[_RANDOM_PREFIX : _RANDOM_PREFIX + 4])
        start = _RANDOM_PREFIX + 4
        if start + length > len(plain):
            raise WeChatCallbackError(
                None, "The decrypted push declares a length longer than its content."
            )
        message = plain[start : start + length]
        appid = plain[start + length :]
        if not hmac.compare_digest(appid, self.appid.encode("utf-8")):
            raise WeChatCallbackError(
                None, "The decrypted push was encrypted for a different AppID."
            )
        return message

    def encrypt_message(self, xml: str, nonce: str, timestamp: str | int | None = None) -> str:
        """Wrap a passive reply for safe mode: ``<xml><Encrypt/><MsgSignature/>
        <TimeStamp/><Nonce/></xml>``."""
        timestamp = str(int(time.time()) if timestamp is None else timestamp)
        encrypted = self.encrypt(xml)
        signature = msg_signature(self._token, timestamp, nonce, encrypted)
        return (
            f"<xml><Encrypt>{_cdata(encrypted)}</Encrypt>"
            f"<MsgSignature>{_cdata(signature)}</MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce>{_cdata(nonce)}</Nonce></xml>"
        )

    def decrypt_message(
        self, body_xml: str | bytes, msg_signature: str, timestamp: str, nonce: str
    ) -> str:
        """The plaintext XML of a safe-mode (or compatible-mode) push.

        The signature is checked over ``<Encrypt>`` before decrypting, as WeChat's
        docs require.
        """
        encrypted = parse_xml(body_xml).get("Encrypt")
        if not encrypted:
            raise WeChatCallbackError(None, "The callback body has no <Encrypt> element.")
        expected = sha1_signature(self._token, str(timestamp), str(nonce), encrypted)
        if not hmac.compare_digest(
            expected.encode("ascii"), str(msg_signature).lower().encode("utf-8")
        ):
            raise WeChatCallbackError(None, "The msg_signature of the callback does not match.")
        try:
            return self.decrypt(encrypted).decode("utf-8")
        except UnicodeDecodeError:
            raise WeChatCallbackError(None, "The decrypted push is not UTF-8 text.") from None


# ----------------------------------------------------------------- messages


@dataclass(frozen=True)
class CallbackMessage(Mapping[str, str]):
    """A parsed push. Typed attributes for the fields kfadmin uses; every element is
    also reachable by its wire name (``message["KfAccount"]``)."""

    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    msg_id: str = ""
    content: str = ""
    media_id: str = ""
    pic_url: str = ""
    format: str = ""
    recognition: str = ""
    thumb_media_id: str = ""
    event: str = ""
    event_key: str = ""
    kf_account: str = ""
    from_kf_account: str = ""
    to_kf_account: str = ""
    bizmsgmenuid: str = ""
    raw: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_event(self) -> bool:
        return self.msg_type == "event"

    @property
    def is_menu_click(self) -> bool:
        """A tap on an option of a ``msgmenu`` message (a text with bizmsgmenuid)."""
        return self.msg_type == "text" and bool(self.bizmsgmenuid)

    def __getitem__(self, key: str) -> str:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


# wire element -> CallbackMessage attribute
_MESSAGE_FIELDS: dict[str, str] = {
    "ToUserName": "to_user",
    "FromUserName": "from_user",
    "MsgType": "msg_type",
    "MsgId": "msg_id",
    "Content": "content",
    "MediaId": "media_id",
    "PicUrl": "pic_url",
    "Format": "format",
    "Recognition": "recognition",
    "ThumbMediaId": "thumb_media_id",
    "Event": "event",
    "EventKey": "event_key",
    "KfAccount": "kf_account",
    "FromKfAccount": "from_kf_account",
    "ToKfAccount": "to_kf_account",
    "bizmsgmenuid": "bizmsgmenuid",
}


# The shape of each field WeChat pushes. Openids are 28 characters of [A-Za-z0-9_-]
# (64 is the column width); a kf account is "prefix@wechat_id".
OPENID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
KF_ACCOUNT_RE = re.compile(r"(?=.{3,64}$)[A-Za-z0-9_-]+@[A-Za-z0-9_-]+")
_ORIGINAL_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_DIGITS_RE = re.compile(r"[0-9]{1,20}")
_EVENT_RE = re.compile(r"[A-Za-z_]{1,64}")
PUSH_MSG_TYPES = frozenset(
    {"text", "image", "voice", "video", "shortvideo", "location", "link", "file", "miniprogrampage", "event"}
)
MAX_CONTENT_CHARS = 20_000
MAX_FIELD_CHARS = 2_048
# A push's CreateTime is when the customer acted: WeChat pushes at once and retries
# within about 15 s, so anything far from the push's own timestamp is not from it.
CREATE_TIME_BEFORE = 3_600
_KF_FIELDS = {
    "kf_create_session": ("KfAccount",),
    "kf_close_session": ("KfAccount",),
    "kf_switch_session": ("FromKfAccount", "ToKfAccount"),
}


def parse_message(xml: str | bytes, *, timestamp: int | None = None) -> CallbackMessage:
    """Parse a plaintext push (decrypt safe-mode bodies first) and check every field
    like a form: a :class:`WeChatCallbackError` names the first that is wrong.

    With ``timestamp`` (the push's, already checked for freshness) CreateTime must
    lie between an hour before it and :data:`MAX_CLOCK_SKEW` after it.

    Handles user messages (text, image, voice, video, shortvideo, ...), events
    including ``kf_create_session``/``kf_close_session``/``kf_switch_session`` and
    menu-option taps (text with ``bizmsgmenuid``).
    """
    values = parse_xml(xml)
    missing = [tag for tag in ("ToUserName", "FromUserName", "CreateTime", "MsgType") if not values.get(tag)]
    if missing:
        raise WeChatCallbackError(None, f"The push lacks {', '.join(missing)}.")
    _check_field(values, "ToUserName", _ORIGINAL_ID_RE, "an original ID")
    _check_field(values, "FromUserName", OPENID_RE, "an openid")
    create_time = _create_time(values["CreateTime"], timestamp)
    msg_type = values["MsgType"]
    if msg_type not in PUSH_MSG_TYPES:
        raise WeChatCallbackError(None, "The push has an unknown MsgType.")
    if msg_type == "text" and "Content" not in values:
        raise WeChatCallbackError(None, "The text push lacks Content.")
    if "MsgId" in values:
        _check_field(values, "MsgId", _DIGITS_RE, "a message id")
    if msg_type == "event":
        if not values.get("Event"):
            raise WeChatCallbackError(None, "The event push lacks Event.")
        _check_field(values, "Event", _EVENT_RE, "an event name")
        for tag in _KF_FIELDS.get(values["Event"].lower(), ()):
            if not values.get(tag):
                raise WeChatCallbackError(None, f"The push lacks {tag}.")
    for tag in ("KfAccount", "FromKfAccount", "ToKfAccount"):
        if values.get(tag):
            _check_field(values, tag, KF_ACCOUNT_RE, "a kf account (prefix@wechat_id)")
    for tag, value in values.items():
        limit = MAX_CONTENT_CHARS if tag == "Content" else MAX_FIELD_CHARS
        if len(value) > limit and tag != "Encrypt":
            raise WeChatCallbackError(None, f"The push's {tag} is longer than {limit} characters.")
    kwargs = {attr: values[tag] for tag, attr in _MESSAGE_FIELDS.items() if tag in values}
    return CallbackMessage(create_time=create_time, raw=values, **kwargs)


def _check_field(values: Mapping[str, str], tag: str, pattern: re.Pattern[str], what: str) -> None:
    if not pattern.fullmatch(values[tag]):
        raise WeChatCallbackError(None, f"The push's {tag} is not {what}.")


def _create_time(value: str, timestamp: int | None) -> int:
    if not re.fullmatch(r"[0-9]{1,20}", value):
        raise WeChatCallbackError(None, "The push has a non-numeric CreateTime.")
    create_time = int(value)
    if timestamp is None:
        in_range = 0 < create_time < 2**32
    else:
        in_range = timestamp - CREATE_TIME_BEFORE <= create_time <= timestamp + MAX_CLOCK_SKEW
    if not in_range:
        raise WeChatCallbackError(None, "The push's CreateTime is out of range.")
    return create_time


# ---------------------------------------------------------------- replies


def transfer_customer_service_reply(
    to_user: str,
    from_user: str,
    kf_account: str | None = None,
    create_time: int | None = None,
) -> str:
    """Passive reply handing the user's message to the kf system (§7.4).

    ``to_user`` is the customer's openid, ``from_user`` the official account's
    original id (``gh_...``); ``kf_account`` routes to one agent, who must be
    online or the customer waits for that agent only.
    """
    created = int(time.time()) if create_time is None else int(create_time)
    trans_info = (
        f"<TransInfo><KfAccount>{_cdata(kf_account)}</KfAccount></TransInfo>" if kf_account else ""
    )
    return (
        f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime>"
        f"<MsgType>{_cdata('transfer_customer_service')}</MsgType>"
        f"{trans_info}</xml>"
    )


def echo_for_verification(
    token: str, signature: str, timestamp: str, nonce: str, echostr: str
) -> str | None:
    """The body to answer WeChat's URL verification GET with, or None if the
    signature is wrong (reply 403 then)."""
    return echostr if check_signature(token, signature, timestamp, nonce) else None

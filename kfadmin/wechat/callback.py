"""Helpers for WeChat's message push (the callback URL), wechat-kf-api.md §7.

- URL verification: :func:`check_signature` (sha1 over the sorted token, timestamp
  and nonce, compared in constant time).
- Safe mode: :class:`WeChatCrypto` (AES-256-CBC, IV = key[:16], PKCS#7 with a
  32-byte block, plaintext ``random16 | len_be32 | msg | appid``) and
  :func:`msg_signature`.
- Parsing pushes: :func:`parse_message`, with DOCTYPE/ENTITY declarations refused
  before the XML parser sees the body (no XXE, no billion laughs).
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

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import WeChatCallbackError

__all__ = [
    "CallbackMessage",
    "WeChatCrypto",
    "check_signature",
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
_FORBIDDEN_XML_RE = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


# ----------------------------------------------------------------- signatures


def sha1_signature(*parts: str) -> str:
    """WeChat's signature: sha1 of the parts sorted lexicographically and joined."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    """Verify the ``signature`` query parameter of a push or of URL verification."""
    expected = sha1_signature(token, str(timestamp), str(nonce))
    return hmac.compare_digest(expected.encode("ascii"), str(signature).lower().encode("utf-8"))


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """The ``msg_signature`` of a safe-mode push or reply."""
    return sha1_signature(token, str(timestamp), str(nonce), encrypt)


# ----------------------------------------------------------------------- XML


def _cdata(value: str) -> str:
    # "]]>" cannot appear inside CDATA; split it across two sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def parse_xml(body: str | bytes) -> dict[str, str]:
    """Parse a push or reply into ``{tag: text}`` for the children of ``<xml>``.

    Refuses DOCTYPE and ENTITY declarations before parsing: expat would expand
    internal entities, which is all a billion-laughs attack needs.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_XML_BYTES:
        raise WeChatCallbackError(None, "The callback body is too large to be a WeChat push.")
    if _FORBIDDEN_XML_RE.search(raw):
        raise WeChatCallbackError(
            None, "The callback body contains a DOCTYPE or ENTITY declaration; refused."
        )
    try:
        root = ET.fromstring(raw)
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

    def _cipher(self) -> Cipher:
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


def parse_message(xml: str | bytes) -> CallbackMessage:
    """Parse a plaintext push (decrypt safe-mode bodies first).

    Handles user messages (text, image, voice, video, shortvideo, ...), events
    including ``kf_create_session``/``kf_close_session``/``kf_switch_session`` and
    menu-option taps (text with ``bizmsgmenuid``).
    """
    values = parse_xml(xml)
    missing = [tag for tag in ("ToUserName", "FromUserName", "MsgType") if not values.get(tag)]
    if missing:
        raise WeChatCallbackError(None, f"The push lacks {', '.join(missing)}.")
    try:
        create_time = int(values.get("CreateTime", "0") or 0)
    except ValueError:
        raise WeChatCallbackError(None, "The push has a non-numeric CreateTime.") from None
    kwargs = {attr: values[tag] for tag, attr in _MESSAGE_FIELDS.items() if tag in values}
    return CallbackMessage(create_time=create_time, raw=values, **kwargs)


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

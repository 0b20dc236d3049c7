"""Signed (and optionally AES-encrypted) message pushes to an OA's callback URL.

Implements wechat-kf-api.md §7: sha1 over the sorted [token, timestamp, nonce]
for ``signature``; in compatible and safe mode AES-256-CBC with IV = key[:16],
PKCS#7 padding to 32-byte blocks, plaintext ``random16 | len_be32 | xml | appid``
and ``msg_signature`` over the sorted [token, timestamp, nonce, Encrypt].

Delivery runs on one background thread so API handlers never wait on the
receiver, and so pushes arrive in the order the events happened.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

log = logging.getLogger("kfadmin.emulator.callbacks")

MODES = ("plain", "compat", "safe")
PUSH_TIMEOUT = 5.0  # WeChat gives the developer server 5 s


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


def encrypt_message(
    xml: bytes, *, encoding_aes_key: str, appid: str, random16: bytes | None = None
) -> str:
    """The ``Encrypt`` value WeChat puts into a compatible/safe-mode push."""
    key = aes_key(encoding_aes_key)
    prefix = random16 if random16 is not None else os.urandom(16)
    plain = prefix + struct.pack(">I", len(xml)) + xml + appid.encode("ascii")
    pad = 32 - len(plain) % 32  # a full block of 32 when already aligned
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def cdata(value: str) -> str:
    # "]]>" cannot appear inside CDATA; split it across two sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_xml(fields: Iterable[tuple[str, str | int]]) -> str:
    parts = ["<xml>"]
    for name, value in fields:
        text = str(value) if isinstance(value, int) else cdata(value)
        parts.append(f"<{name}>{text}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


@dataclass
class Push:
    """One HTTP POST ready to send: URL with signed query, and the XML body."""

    url: str
    body: bytes
    appid: str
    kind: str
    generation: int
    plain_xml: str


def prepare_push(
    *,
    url: str,
    token: str,
    encoding_aes_key: str,
    appid: str,
    original_id: str,
    mode: str,
    fields: list[tuple[str, str | int]],
    openid: str,
    timestamp: int,
    kind: str,
    generation: int,
) -> Push:
    nonce = str(secrets.randbelow(10**10))
    ts = str(timestamp)
    plain_xml = build_xml(fields)
    query: dict[str, str] = {
        "signature": sha1_signature(token, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "openid": openid,
    }
    if mode == "plain":
        body = plain_xml
    else:
        encrypted = encrypt_message(
            plain_xml.encode("utf-8"), encoding_aes_key=encoding_aes_key, appid=appid
        )
        query["encrypt_type"] = "aes"
        query["msg_signature"] = sha1_signature(token, ts, nonce, encrypted)
        if mode == "safe":
            body = build_xml([("ToUserName", original_id), ("Encrypt", encrypted)])
        else:
            # Compatible mode carries the plaintext fields and the ciphertext side by side.
            body = build_xml([*fields, ("Encrypt", encrypted)])
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    full_url = url + sep + urllib.parse.urlencode(query)
    return Push(
        url=full_url,
        body=body.encode("utf-8"),
        appid=appid,
        kind=kind,
        generation=generation,
        plain_xml=plain_xml,
    )


@dataclass
class Delivery:
    appid: str
    kind: str
    url: str
    ok: bool
    status: int | None
    response: str
    error: str
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "appid": self.appid,
            "kind": self.kind,
            "url": self.url,
            "ok": self.ok,
            "status": self.status,
            "response": self.response,
            "error": self.error,
            "at": self.at,
        }


class CallbackSender:
    """A single daemon thread draining a FIFO of pushes; failures are only logged."""

    def __init__(self, log_size: int = 500) -> None:
        self._cond = threading.Condition()
        self._jobs: deque[Push] = deque()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self.generation = 0
        self.deliveries: deque[Delivery] = deque(maxlen=log_size)

    def submit(self, push: Push) -> None:
        with self._cond:
            self._jobs.append(push)
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="emulator-callbacks", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def reset(self) -> None:
        """Forget queued pushes and the log; pushes already in flight are discarded."""
        with self._cond:
            self.generation += 1
            # The push in flight (if any) belongs to the old generation and will not
            # decrement the counter, so start from zero.
            self._pending = 0
            self._jobs.clear()
            self.deliveries.clear()
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted push was attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                push = self._jobs.popleft()
            try:
                delivery = self._deliver(push)
                with self._cond:
                    if push.generation == self.generation:
                        self.deliveries.append(delivery)
            finally:
                with self._cond:
                    if push.generation == self.generation:
                        self._pending -= 1
                    self._cond.notify_all()

    def _deliver(self, push: Push) -> Delivery:
        request = urllib.request.Request(
            push.url,
            data=push.body,
            method="POST",
            headers={"Content-Type": "text/xml; charset=utf-8", "User-Agent": "Mozilla/4.0"},
        )
        try:
            with urllib.request.urlopen(request, timeout=PUSH_TIMEOUT) as response:
                text = response.read(4096).decode("utf-8", "replace")
                return Delivery(push.appid, push.kind, push.url, True, response.status, text, "")
        except urllib.error.HTTPError as exc:
            log.warning("callback %s to %s answered HTTP %s", push.kind, push.url, exc.code)
            return Delivery(
                push.appid, push.kind, push.url, False, exc.code, "", f"HTTP {exc.code}"
            )
        except (OSError, ValueError) as exc:
            log.warning("callback %s to %s failed: %s", push.kind, push.url, exc)
            return Delivery(push.appid, push.kind, push.url, False, None, "", str(exc))


def verify_url(*, url: str, token: str, timeout: float = PUSH_TIMEOUT) -> dict[str, Any]:
    """WeChat's URL check: GET with signature/timestamp/nonce/echostr; expects echostr back."""
    ts = str(int(time.time()))
    nonce = str(secrets.randbelow(10**10))
    echostr = str(secrets.randbelow(10**19))
    query = urllib.parse.urlencode(
        {
            "signature": sha1_signature(token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }
    )
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    try:
        with urllib.request.urlopen(url + sep + query, timeout=timeout) as response:
            body = response.read(4096).decode("utf-8", "replace")
            return {
                "ok": body == echostr,
                "status": response.status,
                "echostr": echostr,
                "response": body,
            }
    except urllib.error.HTTPError as exc:
        return {
            "ok": False,
            "status": exc.code,
            "echostr": echostr,
            "response": "",
            "error": f"HTTP {exc.code}",
        }
    except (OSError, ValueError) as exc:
        return {"ok": False, "status": None, "echostr": echostr, "response": "", "error": str(exc)}

"""Helpers for the emulator tests: raw HTTP calls and an independent callback decoder."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TIMEOUT = 30


def utf8_json(body: Any) -> bytes:
    """A body encoded the way WeChat wants it: raw UTF-8, no \\uXXXX escapes."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def post_raw(
    base_url: str, path: str, token: str | None, data: bytes, **kwargs: Any
) -> requests.Response:
    params = kwargs.pop("params", {})
    if token is not None:
        params = {"access_token": token, **params}
    return requests.post(base_url + path, params=params, data=data, timeout=TIMEOUT, **kwargs)


def sha1_hex(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def decrypt_push(encrypted: str, encoding_aes_key: str, appid: str) -> bytes:
    """Decode a safe-mode Encrypt value independently of the emulator's code."""
    key = base64.b64decode(encoding_aes_key + "=")
    assert len(key) == 32
    raw = base64.b64decode(encrypted)
    assert len(raw) % 32 == 0, "PKCS#7 with 32-byte blocks gives a multiple of 32"
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(raw) + decryptor.finalize()
    pad = plain[-1]
    assert 1 <= pad <= 32 and plain[-pad:] == bytes([pad]) * pad
    plain = plain[:-pad]
    (length,) = struct.unpack(">I", plain[16:20])
    xml = plain[20 : 20 + length]
    assert plain[20 + length :] == appid.encode("ascii")
    return xml


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP server standing in for kfadmin's callback endpoint."""

    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    _server: ThreadingHTTPServer | None = None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def posts(self) -> list[Received]:
        return [r for r in self.requests if r.method == "POST"]


def start_receiver() -> Receiver:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _record(self, body: bytes) -> dict[str, str]:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            receiver.requests.append(Received(self.command, split.path, query, body))
            return query

        def do_GET(self) -> None:
            query = self._record(b"")
            body = query.get("echostr", "").encode()
            self.send_response(receiver.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._record(self.rfile.read(length))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"success")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    receiver._server = server
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/wechat/callback"
    return receiver

"""HTTP front of the emulator: WeChat paths plus the ``/__emulator__/`` control API.

Stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive, so a client's
connection pool is exercised as against the real host. Whatever goes wrong, the
answer is JSON (WeChat's error shape on WeChat paths), never an HTML traceback.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .api import ApiRequest, load_json
from .core import Emulator
from .demo import DEMO_AVATAR
from .errors import ApiError, ControlError

log = logging.getLogger("kfadmin.emulator")

CONTROL_PREFIX = "/__emulator__/"
MAX_BODY = 64 * 1024 * 1024
HEADIMG_RE = re.compile(r"headimg/([A-Za-z0-9_-]+)/(\d+)\.jpg")
# PicUrl of customer images in pushes; media are not modelled, so any id gets a placeholder.
MEDIA_RE = re.compile(r"media/[A-Za-z0-9_-]+\.jpg")
MATERIAL_RE = re.compile(r"material/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class ControlEndpoint:
    method: str  # name of the Emulator method
    http_methods: tuple[str, ...]
    # Wrap the result as {result_key: ...}: lists always (default key "items"), and
    # objects whose own fields would clash with errcode/errmsg (a fault rule has errcode).
    result_key: str | None = None


CONTROL: dict[str, ControlEndpoint] = {
    "add_official_account": ControlEndpoint("add_official_account", ("POST",)),
    "set_callback": ControlEndpoint("set_callback", ("POST",)),
    "seed_demo": ControlEndpoint("seed_demo", ("POST",)),
    "add_agent": ControlEndpoint("add_agent", ("POST",)),
    "add_customer": ControlEndpoint("add_customer", ("POST",)),
    "customer_writes": ControlEndpoint("customer_writes", ("POST",)),
    "customer_event": ControlEndpoint("customer_event", ("POST",)),
    "agent_online": ControlEndpoint("agent_online", ("POST",)),
    "agent_accept": ControlEndpoint("agent_accept", ("POST",)),
    "agent_transfer": ControlEndpoint("agent_transfer", ("POST",)),
    "invite_respond": ControlEndpoint("invite_respond", ("POST",)),
    "generate_records": ControlEndpoint("generate_records", ("POST",)),
    "faults": ControlEndpoint("add_fault", ("POST",), "fault"),
    "add_fault": ControlEndpoint("add_fault", ("POST",), "fault"),
    "list_faults": ControlEndpoint("faults", ("GET", "POST"), "faults"),
    "clear_faults": ControlEndpoint("clear_faults", ("POST",)),
    "invalidate_tokens": ControlEndpoint("invalidate_tokens", ("POST",)),
    "issue_token": ControlEndpoint("issue_token", ("POST",)),
    "advance": ControlEndpoint("advance", ("POST",)),
    "configure": ControlEndpoint("configure", ("GET", "POST")),
    "reset": ControlEndpoint("reset", ("POST",)),
    "state": ControlEndpoint("state", ("GET", "POST")),
    "customer": ControlEndpoint("customer", ("GET", "POST")),
    "records": ControlEndpoint("records", ("GET", "POST")),
    "calls": ControlEndpoint("calls", ("GET", "POST"), "calls"),
    "clear_calls": ControlEndpoint("clear_calls", ("POST",)),
    "callbacks": ControlEndpoint("callbacks", ("GET", "POST"), "callbacks"),
    "flush_callbacks": ControlEndpoint("flush_callbacks", ("POST",)),
    "verify_callback_url": ControlEndpoint("verify_callback_url", ("POST",)),
    "add_material": ControlEndpoint("add_material", ("POST",)),
    "media": ControlEndpoint("media_list", ("GET", "POST")),
}


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _query_value(raw: str) -> Any:
    # GET control calls carry JSON-ish scalars in the query (limit=10, customers=false).
    try:
        return load_json(raw.encode("utf-8"))
    except ValueError:
        return raw


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kfadmin-emulator"
    sys_version = ""
    # Headers and body go out as one write (buffered wfile, flushed after each
    # request) with Nagle off; otherwise keep-alive clients wait ~40 ms per call on
    # delayed ACKs.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _Server

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed request lines, unsupported methods...: still JSON, never an HTML page.
        payload = ApiError(-1, f"HTTP {code} {message or ''}".strip()).payload()
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json; encoding=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass
        self.close_connection = True

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        close: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            # Say so: a pooled client that is not told would reuse the dead socket.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _send_json(
        self,
        status: int,
        payload: Any,
        *,
        close: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send(
            status,
            json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            "application/json; encoding=utf-8",
            close=close,
            headers=headers,
        )

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY:
                    raise _TooLarge
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        raw = self.headers.get("Content-Length")
        if not raw:
            return b""
        length = int(raw)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_BODY:
            raise _TooLarge
        return self.rfile.read(length)

    def _drop(self) -> None:
        """Close the socket without a response, like a dropped connection."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------------ entry points

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # Read and answered like the others (a WeChat or control error, never an action),
    # so the connection stays usable; methods without a do_ get send_error's JSON.
    def do_PATCH(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def _handle(self) -> None:
        emu = self.server.emulator
        # Keep-alive survives any error once the whole body is read: the next request
        # starts where this one ended. Only an unread body (or a half-sent answer)
        # leaves the stream unusable, and then the answer says Connection: close.
        self._responded = False
        body_read = False
        try:
            split = urlsplit(self.path)
            try:
                body = self._read_body()
            except _TooLarge:
                self._send_json(200, ApiError(44002, "request body too large").payload(), close=True)
                return
            except ValueError:
                self._send_json(200, ApiError(47001, "unreadable body").payload(), close=True)
                return
            body_read = True
            if split.path.startswith(CONTROL_PREFIX) or split.path == CONTROL_PREFIX.rstrip("/"):
                self._control(split.path[len(CONTROL_PREFIX) :], split.query, body)
                return
            host = self.headers.get("Host") or self.server.host_port
            request = ApiRequest(
                method=self.command,
                path=split.path,
                query_string=split.query,
                body=body,
                headers={k.lower(): v for k, v in self.headers.items()},
                base_url=f"http://{host}",
            )
            outcome = emu.process(request)
            if outcome.delay:
                time.sleep(outcome.delay)
            if outcome.drop:
                self._drop()
                return
            self._send(outcome.status, outcome.encoded(), outcome.content_type, headers=outcome.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            # A bug must still look like WeChat being busy, not like a Python traceback page.
            log.exception("emulator failed on %s %s", self.command, self.path)
            if self._responded:
                self.close_connection = True
                return
            try:
                self._send_json(200, ApiError(-1).payload(), close=not body_read)
            except OSError:
                self.close_connection = True

    # ------------------------------------------------------------------ control API

    def _control(self, name: str, query: str, body: bytes) -> None:
        emu = self.server.emulator
        match = HEADIMG_RE.fullmatch(name)
        material = MATERIAL_RE.fullmatch(name)
        read_only = bool(match or material or MEDIA_RE.fullmatch(name)) or name in ("", "index", "health")
        if read_only and self.command != "GET":
            self._wrong_method(("GET",))
            return
        if match:
            data = emu.headimg(match.group(1), int(match.group(2)))
            if data is None:
                self._send_json(404, ControlError(404, "no such avatar").payload())
            else:
                self._send(200, data, "image/jpeg")
            return
        if material:
            media = emu.material(material.group(1), material.group(2))
            if media is None:
                self._send_json(404, ControlError(404, "no such material").payload())
            else:
                self._send(200, media.content, media.content_type)
            return
        if MEDIA_RE.fullmatch(name):
            self._send(200, DEMO_AVATAR, "image/jpeg")
            return
        if name in ("", "index"):
            self._send_json(200, {"errcode": 0, "errmsg": "ok", "endpoints": sorted(CONTROL)})
            return
        if name == "health":
            self._send_json(200, {"errcode": 0, "errmsg": "ok", "now": emu.now()})
            return
        endpoint = CONTROL.get(name)
        if endpoint is None:
            self._send_json(404, ControlError(404, name).payload())
            return
        if self.command not in endpoint.http_methods:
            self._wrong_method(endpoint.http_methods)
            return
        try:
            payload = self._control_payload(query, body)
            method: Callable[..., Any] = getattr(emu, endpoint.method)
            try:
                inspect.signature(method).bind(**payload)
            except TypeError as exc:
                raise ControlError(400, str(exc)) from exc
            result = _jsonable(method(**payload))
        except ApiError as exc:
            self._send_json(400, exc.payload())
            return
        if isinstance(result, list) or endpoint.result_key:
            result = {endpoint.result_key or "items": result}
        self._send_json(200, {"errcode": 0, "errmsg": "ok", **result})

    def _wrong_method(self, allowed: tuple[str, ...]) -> None:
        payload = ControlError(400, f"use {' or '.join(allowed)}").payload()
        self._send_json(405, payload, headers={"Allow": ", ".join(allowed)})

    def _control_payload(self, query: str, body: bytes) -> dict[str, Any]:
        payload: dict[str, Any] = {k: _query_value(v[-1]) for k, v in parse_qs(query).items()}
        if body.strip():
            try:
                data = load_json(body)
            except ValueError as exc:
                raise ControlError(400, "body must be a JSON object") from exc
            if not isinstance(data, dict):
                raise ControlError(400, "body must be a JSON object")
            payload.update(data)
        return payload


class _TooLarge(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A benchmark may open many connections at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        # TCP connections accepted so far: shows whether clients reuse kept-alive ones.
        self.connections_accepted = 0
        super().__init__(address, _Handler)
        # The socket's own name, which is a text host for the IPv4 socket bound here.
        bound_host, bound_port = self.socket.getsockname()[:2]
        self.host_port = f"{bound_host}:{bound_port}"
        public_host = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
        self.base_url = f"http://{public_host}:{bound_port}"

    def get_request(self) -> tuple[socket.socket, Any]:
        # Called by serve_forever's one thread only, so the count needs no lock.
        request = super().get_request()
        self.connections_accepted += 1
        return request


@dataclass
class ServerHandle:
    """A running emulator server (see ``serve_in_thread``)."""

    emulator: Emulator
    host: str
    port: int
    base_url: str
    _server: _Server
    _thread: threading.Thread

    @property
    def connections(self) -> int:
        """How many TCP connections the server has accepted."""
        return self._server.connections_accepted

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def make_server(emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> _Server:
    server = _Server((host, port), emulator)
    if not emulator.public_base_url:
        emulator.public_base_url = server.base_url
    return server


def serve_in_thread(
    emulator: Emulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> ServerHandle:
    """Serve ``emulator`` (a new empty one if None) on a daemon thread; port 0 picks a free port."""
    emu = emulator if emulator is not None else Emulator()
    server = make_server(emu, host, port)
    # A short poll interval makes shutdown() quick, which matters for test teardown.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="kf-emulator", daemon=True
    )
    thread.start()
    return ServerHandle(
        emulator=emu,
        host=host,
        port=server.server_address[1],
        base_url=server.base_url,
        _server=server,
        _thread=thread,
    )

"""HTTP transport: one ``requests.Session``, timeouts on every call, no retries.

Retrying is decided above this layer (the token refresh in the client, Celery for
transient failures), so a request is sent exactly once per :meth:`Transport.send`.
Every failure becomes a :class:`~kfadmin.wechat.errors.WeChatError`; secrets in the
URL (``access_token``, ``secret``) are redacted before anything is logged or put in
an exception message.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from .errors import (
    WeChatRequestNotSent,
    WeChatResponseError,
    WeChatTransportError,
    error_from_response,
    transport_detail,
)

__all__ = ["ApiRequest", "RawAnswer", "Transport", "UploadFile", "encode_json", "redact", "redact_url"]

logger = logging.getLogger("kfadmin.wechat")

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
USER_AGENT = "kfadmin-wechat/1.0"

_SENSITIVE_QUERY_KEYS = ("access_token", "secret")
_SENSITIVE_QUERY_RE = re.compile(r"((?:access_token|secret)=)[^&#\s'\"]*", re.IGNORECASE)


def encode_json(payload: Mapping[str, Any]) -> bytes:
    """Serialise a request body the way WeChat needs it: raw UTF-8, no ``\\uXXXX``
    escapes (errcode 40033) and no HTML escaping (``<a href>`` links in text)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def redact_url(url: str) -> str:
    """``url`` with the values of ``access_token`` and ``secret`` replaced by ``***``."""
    return _SENSITIVE_QUERY_RE.sub(r"\1***", url)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Redact sensitive query values and any literal secret from free text."""
    text = redact_url(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True)
class UploadFile:
    """One multipart file part. Content is bytes so a resend carries the same file."""

    field_name: str
    filename: str
    content: bytes = field(repr=False)
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class ApiRequest:
    """A fully built request, independent of the access token.

    The client keeps this object to resend the identical request after refreshing
    the token. ``params`` excludes ``access_token``, which :meth:`Transport.send` puts
    first, as gochat's sorted query does.
    """

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    files: tuple[UploadFile, ...] = ()

    def __repr__(self) -> str:
        # Bodies and params may hold the AppSecret (token requests); keep them out.
        return f"ApiRequest({self.method} {self.path})"

    @classmethod
    def json(
        cls,
        path: str,
        payload: Mapping[str, Any],
        params: Sequence[tuple[str, str]] = (),
    ) -> ApiRequest:
        return cls("POST", path, tuple(params), encode_json(payload))


class Transport:
    """Sends :class:`ApiRequest` objects and turns answers into dicts or errors."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | tuple[float, float] = 10.0,
        session: requests.Session | None = None,
    ):
        if not timeout:
            # A missing timeout lets one stuck connection hang a worker forever.
            raise ValueError("A timeout is required for WeChat requests.")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # Our own session announces itself; a session passed in keeps its headers.
            session.headers["User-Agent"] = USER_AGENT
        self.session = session

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r}, timeout={self.timeout!r})"

    def close(self) -> None:
        """Close the session's pooled connections, if the session is this transport's
        own (a session passed in belongs to the caller)."""
        if self._owns_session:
            self.session.close()

    def send(self, request: ApiRequest, access_token: str | None = None) -> dict[str, Any]:
        """Send ``request`` once and return the decoded JSON object.

        Raises :class:`WeChatRequestNotSent` when the connection was never
        established, :class:`WeChatTransportError` when the request may have reached
        WeChat (read timeout, connection dropped after sending, HTTP status >= 400,
        body that is not a JSON object), or the typed error for a non-zero ``errcode``.
        """
        outgoing = self._prepare(request, access_token)
        response = self._perform(outgoing)
        return self._decode(outgoing, response)

    def send_raw(self, request: ApiRequest, access_token: str | None = None) -> RawAnswer:
        """Send ``request`` once for an answer that may be a file (``media/get``): the
        bytes and headers when WeChat answered with something other than JSON; a JSON
        answer is decoded as :meth:`send` does (an errcode raises) and returned as
        ``json``."""
        outgoing = self._prepare(request, access_token)
        response = self._perform(outgoing)
        content_type = response.headers.get("Content-Type", "")
        if response.status_code < 400 and not _is_json_type(content_type, response.content):
            return RawAnswer(
                content=response.content,
                content_type=content_type,
                disposition=response.headers.get("Content-Disposition", ""),
            )
        return RawAnswer(json=self._decode(outgoing, response))

    def _prepare(self, request: ApiRequest, access_token: str | None) -> _Outgoing:
        """The HTTP request to send: the token first in the query, then the request's
        own parameters; a JSON body or a multipart form."""
        params: list[tuple[str, str]] = []
        if access_token is not None:
            params.append(("access_token", access_token))
        params.extend(request.params)
        secrets = (access_token or "",) + tuple(
            v for k, v in request.params if k in _SENSITIVE_QUERY_KEYS
        )

        headers: dict[str, str] = {"Accept": "application/json"}
        files = None
        if request.files:
            # requests writes the multipart body (and its boundary header) itself.
            files = {
                part.field_name: (part.filename, part.content, part.content_type)
                for part in request.files
            }
        elif request.body is not None:
            headers["Content-Type"] = JSON_CONTENT_TYPE

        prepared = self.session.prepare_request(
            requests.Request(
                request.method,
                self.base_url + request.path,
                params=params,
                data=request.body if files is None else None,
                files=files,
                headers=headers,
            )
        )
        return _Outgoing(request, prepared, redact(prepared.url or "", secrets), secrets)

    def _perform(self, outgoing: _Outgoing) -> requests.Response:
        """Send it once. A failure is classified by what it proves: never connected
        (:class:`WeChatRequestNotSent`) or possibly received (:class:`WeChatTransportError`)."""
        prepared, secrets = outgoing.prepared, outgoing.secrets
        settings = self.session.merge_environment_settings(prepared.url, {}, None, None, None)

        started = time.monotonic()
        failure: str | None = None
        not_sent = False
        detail = transport_detail()
        response: requests.Response | None = None
        try:
            response = self.session.send(prepared, timeout=self.timeout, **settings)
        except requests.ConnectTimeout as exc:
            failure = f"could not connect within {self.timeout}s ({type(exc).__name__})"
            not_sent = True
        except requests.Timeout as exc:
            failure = f"timed out after {self.timeout}s ({type(exc).__name__})"
            detail = transport_detail(timed_out=True)
        except requests.ConnectionError as exc:
            not_sent = never_connected(exc)
            failure = f"connection failed ({type(exc).__name__}: {redact(str(exc), secrets)})"
        except requests.RequestException as exc:
            failure = f"request failed ({type(exc).__name__}: {redact(str(exc), secrets)})"
        elapsed_ms = (time.monotonic() - started) * 1000

        # Raised outside the except blocks so the original exception, whose message
        # contains the unredacted URL, is not chained into tracebacks.
        if failure is not None or response is None:
            message = f"{outgoing.shown} {failure}"
            logger.warning("WeChat request failed: %s", message)
            raise (WeChatRequestNotSent if not_sent else WeChatTransportError)(message, detail=detail)

        logger.debug(
            "WeChat %s %s -> HTTP %s in %.0f ms",
            outgoing.request.method,
            outgoing.shown_url,
            response.status_code,
            elapsed_ms,
        )
        return response

    def _decode(self, outgoing: _Outgoing, response: requests.Response) -> dict[str, Any]:
        """The answer's JSON object, or the error it stands for: an HTTP error status,
        a body that is not a JSON object, or a non-zero ``errcode``."""
        request = outgoing.request
        if response.status_code >= 400:
            message = f"{outgoing.shown} HTTP {response.status_code}"
            logger.warning("WeChat request failed: %s", message)
            raise WeChatTransportError(message, http_status=response.status_code)

        data = _decode_json_object(response.content)
        if data is None:
            message = f"{outgoing.shown} the answer is not a JSON object"
            logger.warning("WeChat request failed: %s", message)
            raise WeChatTransportError(
                message, http_status=response.status_code, detail=transport_detail(unreadable=True)
            )

        errcode = data.get("errcode", 0)
        if errcode in (None, 0, "0", ""):
            # List endpoints answer without any errcode on success.
            return data
        try:
            code = int(errcode)
        except (TypeError, ValueError):
            raise WeChatResponseError(
                None, f"{request.method} {request.path}: errcode {errcode!r} is not a number."
            ) from None
        errmsg = str(data.get("errmsg", ""))
        logger.info(
            "WeChat %s %s answered errcode %s (%s)",
            request.method,
            outgoing.shown_url,
            code,
            redact(errmsg, outgoing.secrets),
        )
        raise error_from_response(code, errmsg)


@dataclass(frozen=True)
class RawAnswer:
    """An answer that is a file (``content``) or a JSON object (``json``)."""

    content: bytes = field(default=b"", repr=False)
    content_type: str = ""
    disposition: str = ""
    json: dict[str, Any] | None = None


def _is_json_type(content_type: str, content: bytes) -> bool:
    # WeChat labels its error answers on file endpoints text/plain at times; a body
    # starting with "{" and a JSON or text type is its JSON either way.
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/json", "text/json"):
        return True
    return media in ("text/plain", "") and content.lstrip()[:1] == b"{"


@dataclass(frozen=True)
class _Outgoing:
    """A request ready to send, with the redacted URL that logs and errors show and
    the secrets any other text about it must not contain."""

    request: ApiRequest
    prepared: requests.PreparedRequest
    shown_url: str
    secrets: tuple[str, ...] = field(repr=False)

    @property
    def shown(self) -> str:
        """The prefix of every failure message: ``"POST https://…?access_token=***:"``."""
        return f"{self.request.method} {self.shown_url}:"


def never_connected(exc: requests.ConnectionError) -> bool:
    """Whether a requests ConnectionError proves the request never left: urllib3
    could not open the connection (name not resolved, refused, unreachable). A
    connection reset or closed after the request was written (ProtocolError,
    RemoteDisconnected) proves nothing: WeChat may have carried it out."""
    reason = exc.args[0] if exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)


def _decode_json_object(content: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None

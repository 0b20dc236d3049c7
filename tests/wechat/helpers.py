"""Constants and request-inspection helpers shared by the WeChat client tests."""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import responses

APPID = "wx1def0e9e5891b338"
SECRET = "s3cr3t-APPSECRET-value"
TOKEN = "ACCESS_TOKEN_CACHED_0001"
BASE = "https://api.weixin.qq.com"
OK = {"errcode": 0, "errmsg": "ok"}


def only_request(mock: responses.RequestsMock) -> requests.PreparedRequest:
    assert len(mock.calls) == 1, [c.request.url for c in mock.calls]
    return mock.calls[0].request


def path_of(request: requests.PreparedRequest) -> str:
    return urlsplit(request.url).path


def query_of(request: requests.PreparedRequest) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(request.url).query, keep_blank_values=True)


def json_of(request: requests.PreparedRequest) -> Any:
    assert isinstance(request.body, bytes)
    return json.loads(request.body.decode("utf-8"))


def multipart_parts(request: requests.PreparedRequest) -> list[tuple[str, str | None, bytes]]:
    """(field name, filename, content) of every part of a multipart request."""
    assert isinstance(request.body, bytes)
    return parse_multipart(request.headers["Content-Type"], request.body)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, bytes]]:
    """(field name, filename, content) of every part of a multipart body."""
    header = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    assert message.is_multipart()
    return [
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    ]

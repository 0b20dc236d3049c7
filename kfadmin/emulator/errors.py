"""WeChat-shaped errors raised inside the emulator.

Every failure the emulator reports to an API client leaves as
``{"errcode": N, "errmsg": "<text> rid: <fake>"}`` with HTTP 200, because that is
what WeChat does; clients are expected to branch on ``errcode`` only.
"""

from __future__ import annotations

import secrets

# Documented wording where the docs give one (wechat-kf-api.md §8), short English
# otherwise. Kept in one table so the errmsg of a code never drifts between handlers.
ERRMSG: dict[int, str] = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40004: "invalid media type",
    40005: "invalid file type",
    40006: "invalid meida size",  # sic: WeChat's own spelling
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40013: "invalid appid",
    40014: "invalid access_token",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40066: "invalid url",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41005: "media data missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    44002: "empty post data",
    44003: "empty news data",
    44004: "empty content",
    45008: "article size out of limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, must slower, retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45072: "command field invalid",
    45080: "no interaction with the user in the last 30 seconds",
    45081: "already in typing state",
    45162: "invalid type",
    47001: "data format error",
    65400: "please enable new custom service, or wait for a while if you have enabled",
    65401: "invalid custom service account",
    65402: "the custom service account need to bind a wechat user",
    65403: "illegal nickname",
    65404: "illegal custom service account",
    65405: "custom service account number reach limit",
    65406: "custom service account exists",
    65407: "the wechat user have been one of your workers",
    65408: "you have already invited the wechat user",
    65409: "wechat account invalid",
    65410: "too many custom service accounts bound by the worker",
    65411: "a effective invitation to bind the custom service account exists",
    65412: "the custom service account have been bound by a wechat user",
    65413: "no session exists for this user",
    65414: "the user is being served by another custom service account",
    65415: "the worker is not online",
    65416: "invalid query parameters",
    65417: "query time range exceeds the limit",
    # Emulator-only codes for misuse of the control API (never sent on WeChat paths).
    400: "bad control request",
    404: "no such control endpoint",
}


def fake_rid() -> str:
    """A diagnostic id shaped like WeChat's ``rid: 6540f1a2-2b3c4d5e-1f2e3d4c``."""
    return f"{secrets.randbits(32):08x}-{secrets.randbits(32):08x}-{secrets.randbits(32):08x}"


class ApiError(Exception):
    """A WeChat error: the handler stops and the client receives ``errcode``/``errmsg``."""

    def __init__(self, errcode: int, detail: str = "") -> None:
        self.errcode = errcode
        self.detail = detail
        super().__init__(f"{errcode} {self.message}")

    @property
    def message(self) -> str:
        base = ERRMSG.get(self.errcode, "error")
        return f"{base} hint: [{self.detail}]" if self.detail else base

    def payload(self) -> dict[str, int | str]:
        return {"errcode": self.errcode, "errmsg": f"{self.message} rid: {fake_rid()}"}


class ControlError(ApiError):
    """Misuse of the ``/__emulator__/`` control API (or its Python twin).

    Subclass of ApiError so control methods can reuse WeChat codes where one fits
    (65401 for an unknown kf account, ...) and use 400 for plain bad input.
    """

    def __init__(self, errcode: int = 400, detail: str = "") -> None:
        super().__init__(errcode, detail)

"""WeChat's side of the kf API: routing, token checks and the 25 operations.

Every handler runs with the emulator's lock held (see ``Emulator.process``) and
returns the JSON object to send, or raises ``ApiError``. Paths, bodies and errcodes
follow wechat-kf-api.md §2-§8; choices where WeChat is undocumented are in
docs/emulator.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .errors import ApiError
from .media import (
    MATERIAL_PAGE_MAX,
    MATERIAL_TYPES,
    UPLOAD_LIMITS,
    UPLOAD_TYPES,
    VOICE_MAX_SECONDS,
    Media,
    NewsMaterial,
    amr_seconds,
    file_format,
)
from .models import NEVER, Customer, KfAccount, OfficialAccount, spend_send, window_open
from .multipart import parse_form_data

if TYPE_CHECKING:
    from .core import Emulator

OK: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}

ACCOUNT_PREFIX_RE = re.compile(r"[A-Za-z0-9_]{1,10}")
INVITE_WX_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{5,19}")
OPENID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A \uXXXX escape for a non-ASCII code point, not itself escaped ("\\u4e2d" is a
# literal backslash followed by "u4e2d"). WeChat rejects these with 40033.
UNICODE_ESCAPE_RE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([0-9a-fA-F]{4})")

# Deeper JSON is a format error (47001). Real bodies nest a few levels; without a cap
# Python's parser hits its recursion limit near 1000, at a depth that depends on the
# thread's stack, so a body could parse here and then break the call log's dump.
MAX_JSON_DEPTH = 512
_JSON_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET_RE = re.compile(rb"[\[\]{}]")

MAX_ACCOUNTS = 100
MAX_BINDINGS_PER_WX = 5
NICKNAME_MAX = 16
AVATAR_MAX_BYTES = 5 * 1024 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"
MSGLIST_MAX_RANGE = 24 * 3600
MSGLIST_MAX_NUMBER = 10000
TYPING_INTERACTION = 30
TYPING_DURATION = 15
WAITCASE_LIMIT = 100

MSG_TYPES = (
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
)

TOKEN_PATHS = frozenset({"/cgi-bin/token", "/cgi-bin/stable_token"})


@dataclass
class ApiRequest:
    method: str
    path: str
    query_string: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Scheme://host the client used; avatar URLs are built from it.
    base_url: str = ""

    @cached_property
    def query(self) -> dict[str, str]:
        # parse_qs percent-decodes, so "%40" and "@" both give "@" (§1.6).
        parsed = parse_qs(self.query_string, keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}


# ---------------------------------------------------------------------------- helpers


def _too_deep(raw: bytes) -> bool:
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False  # cheap common case: not enough brackets to nest that deep
    depth = 0
    for match in _JSON_BRACKET_RE.finditer(_JSON_STRING_RE.sub(b"", raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth -= 1
    return False


def load_json(raw: bytes) -> Any:
    """``json.loads`` for untrusted bytes: anything unparseable (bad UTF-8, bad
    syntax, nesting deeper than MAX_JSON_DEPTH) raises ValueError, never
    RecursionError."""
    if _too_deep(raw):
        raise ValueError("JSON nested too deeply")
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def _json_body(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    """The JSON object in the body, whatever the Content-Type says (§1.3)."""
    if not req.body.strip():
        raise ApiError(44002)
    if emu.reject_unicode_escapes:
        for match in UNICODE_ESCAPE_RE.finditer(req.body):
            if int(match.group(1), 16) >= 0x80:
                raise ApiError(40033)
    try:
        data = load_json(req.body)
    except ValueError as exc:
        raise ApiError(47001, "body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(47001, "body must be a JSON object")
    return data


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    """JSON numbers (and digit strings, which some clients send) as int; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value.strip()):
        return int(value.strip())
    return None


def check_account_name(oa: OfficialAccount, kf_account: str) -> None:
    """65404 unless ``prefix@<this OA's WeChat ID>`` with a sane prefix (§4.1)."""
    prefix, at, suffix = kf_account.partition("@")
    if not at or not ACCOUNT_PREFIX_RE.fullmatch(prefix) or suffix != oa.wechat_id:
        raise ApiError(65404)


def check_nickname(nickname: Any) -> str:
    if not isinstance(nickname, str) or not nickname.strip() or len(nickname) > NICKNAME_MAX:
        raise ApiError(65403)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in nickname):
        raise ApiError(65403)
    return nickname


def _account(oa: OfficialAccount, kf_account: str) -> KfAccount:
    account = oa.accounts.get(kf_account)
    if account is None:
        raise ApiError(65401)
    return account


def _bound_account(oa: OfficialAccount, kf_account: str) -> KfAccount:
    account = _account(oa, kf_account)
    if not account.bound:
        raise ApiError(65402)
    return account


def _customer(oa: OfficialAccount, openid: str) -> Customer:
    customer = oa.customers.get(openid) if OPENID_RE.fullmatch(openid or "") else None
    if customer is None:
        raise ApiError(40003)
    return customer


def headimg_url(base_url: str, oa: OfficialAccount, account: KfAccount) -> str:
    if account.headimg is None:
        return ""
    return f"{base_url}/__emulator__/headimg/{oa.appid}/{account.kf_id}.jpg?v={account.headimg_version}"


def account_entry(
    emu: Emulator, oa: OfficialAccount, account: KfAccount, base_url: str, now: float
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kf_account": account.kf_account,
        "kf_headimgurl": headimg_url(base_url, oa, account),
        "kf_id": str(account.kf_id),
        "kf_nick": account.nickname,
    }
    if account.bound:
        entry["kf_wx"] = account.kf_wx
    else:
        status = emu.invite_status(account, now)
        if status:
            entry["invite_wx"] = account.invite_wx
            entry["invite_expire_time"] = account.invite_expire_time
            entry["invite_status"] = status
    return entry


# ---------------------------------------------------------------------------- tokens


def op_token(emu: Emulator, req: ApiRequest, now: float) -> dict[str, Any]:
    q = req.query
    if q.get("grant_type") != "client_credential":
        raise ApiError(40002)
    appid, secret = q.get("appid", ""), q.get("secret", "")
    if not appid:
        raise ApiError(41002)
    if not secret:
        raise ApiError(41004)
    oa = emu.find_official_account(appid)
    if oa is None:
        raise ApiError(40013)
    if secret != oa.secret:
        raise ApiError(40001)
    token = emu.issue_classic_token(oa, now)
    return {"access_token": token.value, "expires_in": int(emu.token_lifetime)}


def op_stable_token(emu: Emulator, req: ApiRequest, now: float) -> dict[str, Any]:
    body = _json_body(emu, req)
    if body.get("grant_type") != "client_credential":
        raise ApiError(40002)
    appid, secret = _str(body, "appid"), _str(body, "secret")
    if not appid:
        raise ApiError(41002)
    if not secret:
        raise ApiError(41004)
    oa = emu.find_official_account(appid)
    if oa is None:
        raise ApiError(40013)
    if secret != oa.secret:
        raise ApiError(40125)
    force = body.get("force_refresh", False)
    if isinstance(force, str):
        force = force.lower() == "true"
    token = emu.stable_token(oa, now, force=bool(force))
    return {"access_token": token.value, "expires_in": max(0, int(token.expires_at - now))}


# ---------------------------------------------------------------------------- accounts


def op_add_account(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    body = _json_body(emu, req)
    kf_account = _str(body, "kf_account")
    check_account_name(oa, kf_account)
    nickname = check_nickname(body.get("nickname"))
    if kf_account in oa.accounts:
        raise ApiError(65406)
    if len(oa.accounts) >= MAX_ACCOUNTS:
        raise ApiError(65405)
    emu.create_account(oa, kf_account, nickname)
    return dict(OK)


def op_update_account(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    body = _json_body(emu, req)
    kf_account = _str(body, "kf_account")
    check_account_name(oa, kf_account)
    account = _account(oa, kf_account)
    account.nickname = check_nickname(body.get("nickname"))
    return dict(OK)


def op_delete_account(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    # GET with a query (gochat, legacy doc) and POST with JSON (new doc) are both in use (§9 D1).
    kf_account = req.query.get("kf_account", "")
    if not kf_account and req.method == "POST" and req.body.strip():
        kf_account = _str(_json_body(emu, req), "kf_account")
    account = _account(oa, kf_account)
    emu.delete_account(oa, account, now)
    return dict(OK)


def op_upload_avatar(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    account = _account(oa, req.query.get("kf_account", ""))
    parts = parse_form_data(req.body, req.headers.get("content-type", ""))
    media = next((part for part in parts if part.name == "media"), None)
    if media is None or not media.data:
        raise ApiError(41005)
    if len(media.data) > AVATAR_MAX_BYTES:
        raise ApiError(40009)
    if not media.data.startswith(JPEG_MAGIC):
        raise ApiError(40005)
    account.headimg = media.data
    account.headimg_version += 1
    return dict(OK)


def op_get_account_list(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    return {"kf_list": [account_entry(emu, oa, a, req.base_url, now) for a in oa.accounts.values()]}


def op_get_online_list(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    load = emu.session_counts(oa)
    return {
        "kf_online_list": [
            {
                "kf_account": a.kf_account,
                "status": 1,
                "kf_id": str(a.kf_id),
                "accepted_case": load.get(a.kf_account, 0),
            }
            for a in oa.accounts.values()
            if a.online and a.bound
        ]
    }


def op_invite_worker(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    body = _json_body(emu, req)
    account = _account(oa, _str(body, "kf_account"))
    invite_wx = _str(body, "invite_wx")
    if not INVITE_WX_RE.fullmatch(invite_wx):
        raise ApiError(65409)
    if account.bound:
        raise ApiError(65412)
    if emu.invite_status(account, now) == "waiting":
        raise ApiError(65411)
    if any(a.kf_wx == invite_wx for a in oa.accounts.values()):
        raise ApiError(65407)
    if any(
        a is not account and a.invite_wx == invite_wx and emu.invite_status(a, now) == "waiting"
        for a in oa.accounts.values()
    ):
        raise ApiError(65408)
    if emu.bindings_of(invite_wx) >= MAX_BINDINGS_PER_WX:
        raise ApiError(65410)
    account.invite_wx = invite_wx
    account.invite_status = "waiting"
    account.invite_expire_time = int(now + emu.invite_lifetime)
    return dict(OK)


# ---------------------------------------------------------------------------- sessions


def _session_params(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest
) -> tuple[KfAccount, Customer]:
    body = _json_body(emu, req)
    account = _bound_account(oa, _str(body, "kf_account"))
    customer = _customer(oa, _str(body, "openid"))
    return account, customer


def op_create_session(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    account, customer = _session_params(emu, oa, req)
    if customer.session_kf == account.kf_account:
        return dict(OK)  # the same pair already exists: success (D-session-legacy)
    if not account.online:
        raise ApiError(65415)
    if customer.session_kf:
        raise ApiError(65414)
    emu.open_session(oa, customer, account, opercode=1002, now=now)
    return dict(OK)


def op_close_session(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    account, customer = _session_params(emu, oa, req)
    if not customer.session_kf:
        raise ApiError(65413)
    if customer.session_kf != account.kf_account:
        raise ApiError(65414)
    emu.close_session(oa, customer, now=now)
    return dict(OK)


def op_get_session(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    customer = _customer(oa, req.query.get("openid", ""))
    if not customer.session_kf:
        return {"createtime": 0, "kf_account": ""}
    return {"createtime": customer.session_created, "kf_account": customer.session_kf}


def op_get_session_list(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    account = _bound_account(oa, req.query.get("kf_account", ""))
    sessions: list[dict[str, Any]] = [
        {"createtime": c.session_created, "openid": c.openid}
        for c in oa.customers.values()
        if c.session_kf == account.kf_account
    ]
    sessions.sort(key=lambda s: s["createtime"])
    return {"sessionlist": sessions}


def op_get_wait_case(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for openid in oa.queue:
        if len(entries) >= WAITCASE_LIMIT:
            break
        entries.append({"latest_time": oa.customers[openid].latest_time, "openid": openid})
    return {"count": len(oa.queue), "waitcaselist": entries}


# ---------------------------------------------------------------------------- records


def op_get_msg_list(
    emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float
) -> dict[str, Any]:
    body = _json_body(emu, req)
    start, end = _int(body.get("starttime")), _int(body.get("endtime"))
    msgid, number = _int(body.get("msgid")), _int(body.get("number"))
    if start is None or end is None or start < 0 or end < start:
        raise ApiError(65416, "starttime/endtime")
    if msgid is None or msgid < 1:
        raise ApiError(65416, "msgid")
    if number is None or not 1 <= number <= MSGLIST_MAX_NUMBER:
        raise ApiError(65416, "number")
    if end - start > MSGLIST_MAX_RANGE:
        raise ApiError(65417)
    rows, next_msgid = oa.records.query(starttime=start, endtime=end, msgid=msgid, number=number)
    return {"recordlist": rows, "number": len(rows), "msgid": next_msgid}


# ---------------------------------------------------------------------------- messages

MEDIA_TAGS = {"image": "[image]", "voice": "[voice]", "video": "[video]"}


def _req_text(obj: dict[str, Any], key: str, errcode: int) -> str:
    value = obj.get(key)
    if value is None or value == "":
        raise ApiError(errcode, key)
    if not isinstance(value, str):
        raise ApiError(45162, key)
    return value


def _opt_text(obj: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key in obj and obj[key] is not None and not isinstance(obj[key], str):
            raise ApiError(45162, key)


def _media(oa: OfficialAccount, payload: dict[str, Any], key: str, now: float, *, required: bool = True) -> None:
    """A media_id the account holds and that has not expired (temporary media live 3
    days); 40007 otherwise, as WeChat answers a made-up or expired id."""
    if not required and not payload.get(key):
        _opt_text(payload, key)
        return
    media_id = _req_text(payload, key, 40007)
    if oa.media.live(media_id, now) is None:
        raise ApiError(40007, key)


def _check_payload(oa: OfficialAccount, msgtype: str, payload: dict[str, Any], now: float) -> str:
    """Validate the ``<msgtype>`` object; returns the text the record will show."""
    if msgtype == "text":
        return _req_text(payload, "content", 44004)
    if msgtype in ("image", "voice"):
        _media(oa, payload, "media_id", now)
        return MEDIA_TAGS[msgtype]
    if msgtype == "mpnews":
        if _req_text(payload, "media_id", 40007) not in oa.media.news:
            raise ApiError(40007, "media_id")
        return "[mpnews]"
    if msgtype == "video":
        _opt_text(payload, "title", "description")
        _media(oa, payload, "media_id", now)
        _media(oa, payload, "thumb_media_id", now, required=False)
        return "[video]"
    if msgtype == "music":
        _req_text(payload, "musicurl", 45162)
        _media(oa, payload, "thumb_media_id", now)
        _opt_text(payload, "title", "description", "hqmusicurl")
        return "[music]"
    if msgtype == "news":
        articles = payload.get("articles")
        if not isinstance(articles, list):
            raise ApiError(45162, "articles")
        if not articles:
            raise ApiError(44003)
        if len(articles) > 1:
            raise ApiError(45008)
        article = articles[0]
        if not isinstance(article, dict):
            raise ApiError(45162, "articles[0]")
        _opt_text(article, "title", "description", "url", "picurl")
        if not (article.get("title") or article.get("url")):
            raise ApiError(44003)
        return "[news]"
    if msgtype == "mpnewsarticle":
        # An article_id that was never published is refused like an unknown media_id
        # (what WeChat answers an id in the wrong place; wechat-kf-pitfalls.md).
        if _req_text(payload, "article_id", 45162) not in oa.media.published:
            raise ApiError(40007, "article_id")
        return "[mpnewsarticle]"
    if msgtype == "msgmenu":
        _opt_text(payload, "head_content", "tail_content")
        items = payload.get("list")
        if not isinstance(items, list) or not items:
            raise ApiError(45162, "list")
        for item in items:
            if not isinstance(item, dict):
                raise ApiError(45162, "list item")
            _req_text(item, "id", 45162)
            _req_text(item, "content", 45162)
        return "[msgmenu]"
    if msgtype == "wxcard":
        _req_text(payload, "card_id", 45162)
        return "[wxcard]"
    # miniprogrampage
    _req_text(payload, "appid", 45162)
    _req_text(payload, "pagepath", 45162)
    _media(oa, payload, "thumb_media_id", now)
    _opt_text(payload, "title")
    return "[miniprogrampage]"


def op_send(emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float) -> dict[str, Any]:
    body = _json_body(emu, req)
    customer = _customer(oa, _str(body, "touser"))
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in MSG_TYPES:
        raise ApiError(40008)
    payload = body.get(msgtype)
    if not isinstance(payload, dict):
        raise ApiError(45162, msgtype)
    text = _check_payload(oa, msgtype, payload, now)
    kf_account = ""
    service = body.get("customservice")
    if service is not None:
        if not isinstance(service, dict) or not isinstance(service.get("kf_account", ""), str):
            raise ApiError(45162, "customservice")
        kf_account = service.get("kf_account", "")
        if kf_account:
            _account(oa, kf_account)
    if not window_open(customer, now):
        raise ApiError(45015)
    if not spend_send(customer, now):
        raise ApiError(45047)
    customer.typing_until = NEVER  # a message ends the typing indicator (§6.3)
    emu.append_record(oa, 2002, kf_account or customer.session_kf, customer.openid, text, now)
    return dict(OK)


def op_typing(emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float) -> dict[str, Any]:
    body = _json_body(emu, req)
    command = body.get("command")
    if command not in ("Typing", "CancelTyping"):
        raise ApiError(45072)
    customer = _customer(oa, _str(body, "touser"))
    if command == "CancelTyping":
        customer.typing_until = NEVER
        return dict(OK)
    if not window_open(customer, now):
        raise ApiError(45015)
    if now - customer.last_interaction > TYPING_INTERACTION:
        raise ApiError(45080)
    if customer.typing_until > now:
        raise ApiError(45081)
    customer.typing_until = now + TYPING_DURATION
    return dict(OK)


# ---------------------------------------------------------------------------- media


@dataclass(frozen=True)
class RawBody:
    """A handler's answer that is a file, not JSON (``media/get``)."""

    content: bytes
    content_type: str
    filename: str = ""


def op_media_upload(emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float) -> dict[str, Any]:
    media_type = req.query.get("type", "")
    if media_type not in UPLOAD_TYPES:
        raise ApiError(40004)
    parts = parse_form_data(req.body, req.headers.get("content-type", ""))
    part = next((p for p in parts if p.name == "media"), None)
    if part is None or not part.data:
        raise ApiError(41005)
    max_bytes, formats = UPLOAD_LIMITS[media_type]
    if file_format(part.data) not in formats:
        raise ApiError(40005)
    if len(part.data) > max_bytes:
        raise ApiError(40006)
    if file_format(part.data) == "amr" and amr_seconds(part.data) > VOICE_MAX_SECONDS:
        raise ApiError(40006, "voice longer than 60 s")
    media = emu.store_media(oa, media_type, part.data, now, name=part.filename or "")
    return {"type": media_type, "media_id": media.media_id, "created_at": int(media.created_at)}


def op_media_get(emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float) -> dict[str, Any] | RawBody:
    media = oa.media.live(req.query.get("media_id", ""), now)
    if media is None:
        raise ApiError(40007)
    return RawBody(media.content, media.content_type, media.filename)


def op_material_count(emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float) -> dict[str, Any]:
    return {
        "voice_count": len(oa.media.materials("voice")),
        "video_count": len(oa.media.materials("video")),
        "image_count": len(oa.media.materials("image")),
        "news_count": len(oa.media.news),
    }


def _page(body: dict[str, Any]) -> tuple[int, int]:
    offset, count = _int(body.get("offset")), _int(body.get("count"))
    if offset is None or offset < 0 or count is None or not 1 <= count <= MATERIAL_PAGE_MAX:
        raise ApiError(47001, "offset/count")
    return offset, count


def _news_entry(news: NewsMaterial, key: str, *, with_content: bool = True) -> dict[str, Any]:
    return {
        key: news.ident,
        "content": {
            "news_item": [a.to_dict(with_content=with_content) for a in news.articles],
            "create_time": news.created_at,
            "update_time": news.updated_at,
        },
        "update_time": news.updated_at,
    }


def _newest_first(items: list[NewsMaterial]) -> list[NewsMaterial]:
    return sorted(items, key=lambda n: (-n.updated_at, n.ident))


def op_batchget_material(emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float) -> dict[str, Any]:
    body = _json_body(emu, req)
    kind = body.get("type")
    if kind not in MATERIAL_TYPES:
        raise ApiError(40004)
    offset, count = _page(body)
    if kind == "news":
        news = _newest_first(list(oa.media.news.values()))
        items = [_news_entry(n, "media_id") for n in news[offset : offset + count]]
        total = len(news)
    else:
        materials = oa.media.materials(kind)
        items = [_material_entry(req.base_url, oa, m) for m in materials[offset : offset + count]]
        total = len(materials)
    return {"total_count": total, "item_count": len(items), "item": items}


def material_url(base_url: str, oa: OfficialAccount, media: Media) -> str:
    return f"{base_url}/__emulator__/material/{oa.appid}/{media.media_id}"


def _material_entry(base_url: str, oa: OfficialAccount, media: Media) -> dict[str, Any]:
    entry: dict[str, Any] = {"media_id": media.media_id, "name": media.name, "update_time": int(media.created_at)}
    if media.type == "image":
        entry["url"] = material_url(base_url, oa, media)
    return entry


def op_freepublish_batchget(emu: Emulator, oa: OfficialAccount, req: ApiRequest, now: float) -> dict[str, Any]:
    body = _json_body(emu, req)
    offset, count = _page(body)
    no_content = _int(body.get("no_content", 0))
    published = _newest_first(list(oa.media.published.values()))
    items = [
        _news_entry(n, "article_id", with_content=no_content != 1) for n in published[offset : offset + count]
    ]
    return {"total_count": len(published), "item_count": len(items), "item": items}


# ---------------------------------------------------------------------------- routing

Handler = Callable[["Emulator", OfficialAccount, ApiRequest, float], "dict[str, Any] | RawBody"]


@dataclass(frozen=True)
class Route:
    handler: Handler
    post_only: bool
    # Media and material endpoints work without the kf feature (no 65400).
    kf: bool = True


ROUTES: dict[str, Route] = {
    "/customservice/kfaccount/add": Route(op_add_account, True),
    "/customservice/kfaccount/update": Route(op_update_account, True),
    "/customservice/kfaccount/del": Route(op_delete_account, False),
    "/customservice/kfaccount/uploadheadimg": Route(op_upload_avatar, True),
    "/cgi-bin/customservice/getkflist": Route(op_get_account_list, False),
    "/cgi-bin/customservice/getonlinekflist": Route(op_get_online_list, False),
    # wechatpy since 2022 calls these without /cgi-bin (§9 D2); accept both.
    "/customservice/getkflist": Route(op_get_account_list, False),
    "/customservice/getonlinekflist": Route(op_get_online_list, False),
    "/customservice/kfaccount/inviteworker": Route(op_invite_worker, True),
    "/customservice/kfsession/create": Route(op_create_session, True),
    "/customservice/kfsession/close": Route(op_close_session, True),
    "/customservice/kfsession/getsession": Route(op_get_session, False),
    "/customservice/kfsession/getsessionlist": Route(op_get_session_list, False),
    "/customservice/kfsession/getwaitcase": Route(op_get_wait_case, False),
    "/customservice/msgrecord/getmsglist": Route(op_get_msg_list, True),
    "/cgi-bin/message/custom/send": Route(op_send, True),
    "/cgi-bin/message/custom/typing": Route(op_typing, True),
    "/cgi-bin/media/upload": Route(op_media_upload, True, kf=False),
    "/cgi-bin/media/get": Route(op_media_get, False, kf=False),
    "/cgi-bin/material/get_materialcount": Route(op_material_count, False, kf=False),
    "/cgi-bin/material/batchget_material": Route(op_batchget_material, True, kf=False),
    "/cgi-bin/freepublish/batchget": Route(op_freepublish_batchget, True, kf=False),
}


def _check_method(req: ApiRequest, *, post_only: bool) -> None:
    """WeChat operations are GET or POST; anything else is refused before acting.

    POST-only operations answer 43002 "require POST method" to every other method (as
    stable_token does to a GET, §2.2); the GET operations, which also take a POST,
    answer 43001 "require GET method" to PUT, DELETE and the like (the global code
    list's pair to 43002; WeChat's exact answer to these methods is undocumented).
    """
    if req.method == "POST":
        return
    if post_only:
        raise ApiError(43002)
    if req.method != "GET":
        raise ApiError(43001)


def dispatch(emu: Emulator, req: ApiRequest, now: float) -> dict[str, Any] | RawBody:
    if req.path == "/cgi-bin/token":
        _check_method(req, post_only=False)
        return op_token(emu, req, now)
    if req.path == "/cgi-bin/stable_token":
        _check_method(req, post_only=True)
        return op_stable_token(emu, req, now)
    route = ROUTES.get(req.path)
    if route is None:
        raise ApiError(40066)
    _check_method(req, post_only=route.post_only)
    oa = emu.authenticate(req.query.get("access_token"), now)
    if route.kf and not oa.kf_enabled:
        raise ApiError(65400)
    return route.handler(emu, oa, req, now)

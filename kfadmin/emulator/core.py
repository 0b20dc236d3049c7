"""The emulator's state and its Python API.

One ``Emulator`` holds any number of official accounts. All state is in memory and
guarded by a single re-entrant lock: every public method and every API request
takes it, which keeps the rules simple (no request ever sees half an update) and is
plenty fast for a development tool. The HTTP server (``server.py``) is a thin
layer over ``process()`` and the public control methods below.

Time comes from an injectable clock plus an offset moved by ``advance()``, so tests
can cross a 48 h reply window without sleeping.
"""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import api
from .callbacks import MODES, CallbackSender, Delivery, prepare_push, verify_url
from .errors import ApiError, ControlError
from .faults import FaultRule, FaultSet
from .media import (
    Article,
    Media,
    NewsMaterial,
    amr_bytes,
    image_bytes,
    mp4_bytes,
)
from .models import (
    NEVER,
    Customer,
    KfAccount,
    OfficialAccount,
    Token,
    close_window,
    grant_event,
    grant_message,
    new_openid,
    sends_left,
    window_expires_at,
    window_open,
)

Clock = Callable[[], float]

# stable_token's force_refresh mode: at most 20 rotations a day, 30 s apart (§2.2). The
# day is WeChat's quota day, midnight to midnight in China (UTC+8).
FORCE_REFRESH_PER_DAY = 20
FORCE_REFRESH_INTERVAL = 30
QUOTA_DAY_OFFSET = 8 * 3600

# Enough for any JSON call and a small avatar; a log of 1000 5 MB uploads would not be.
CALL_BODY_LIMIT = 1024 * 1024
TOKEN_SHAPE_RE = re.compile(r"[A-Za-z0-9_-]{64,}")
WECHAT_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,29}")
AES_ALPHABET = string.ascii_letters + string.digits
CUSTOMER_MSGTYPES = ("text", "image", "voice", "video")
EVENT_ALIASES = {
    "follow": "subscribe",
    "subscribe": "subscribe",
    "unfollow": "unsubscribe",
    "unsubscribe": "unsubscribe",
    "menu_click": "CLICK",
    "click": "CLICK",
    "CLICK": "CLICK",
    "scan": "SCAN",
    "SCAN": "SCAN",
}

HTTP_FAULT_PAGES = {
    500: b"<html><head><title>500 Internal Server Error</title></head><body>500 Internal Server Error</body></html>",
    502: b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
    503: b"<html><head><title>503 Service Unavailable</title></head><body>503 Service Unavailable</body></html>",
}


@dataclass
class Call:
    """One API request as the emulator received it (for asserting on what a client sent)."""

    seq: int
    time: float
    method: str
    path: str
    query: dict[str, str]
    query_string: str
    headers: dict[str, str]
    body: bytes  # the first CALL_BODY_LIMIT bytes; body_size is the full length
    json: Any
    body_size: int = 0

    def to_dict(self, body_limit: int = 65536) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "query_string": self.query_string,
            "headers": self.headers,
            "body_size": self.body_size,
            "body": self.body[:body_limit].decode("utf-8", "replace"),
            "json": self.json,
        }


@dataclass
class ApiOutcome:
    """What the server sends back for one API request."""

    status: int = 200
    payload: dict[str, Any] | None = None
    body: bytes = b""
    content_type: str = "application/json; encoding=utf-8"
    delay: float = 0.0
    drop: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.payload is not None:
            # Raw UTF-8 like WeChat, compact to keep 10,000-record pages small.
            return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":")).encode(
                "utf-8"
            )
        return self.body


class Emulator:
    """WeChat's kf API for one or more official accounts, in memory."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        token_lifetime: float = 7200,
        token_overlap: float = 300,
        stable_refresh_margin: float = 300,
        invite_lifetime: float = 7 * 86400,
        calls_limit: int = 1000,
        reject_unicode_escapes: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self._clock: Clock = clock or time.time
        self._seed = seed
        self._defaults: dict[str, Any] = {
            "token_lifetime": float(token_lifetime),
            "token_overlap": float(token_overlap),
            "stable_refresh_margin": float(stable_refresh_margin),
            "invite_lifetime": float(invite_lifetime),
            "calls_limit": int(calls_limit),
            "reject_unicode_escapes": bool(reject_unicode_escapes),
        }
        self._sender = CallbackSender()
        # Absolute base for URLs in dumps (avatars); the server sets it when it starts.
        self.public_base_url = ""
        self._init_state()

    # ------------------------------------------------------------------ state & time

    def _init_state(self) -> None:
        self.token_lifetime: float = self._defaults["token_lifetime"]
        self.token_overlap: float = self._defaults["token_overlap"]
        self.stable_refresh_margin: float = self._defaults["stable_refresh_margin"]
        self.invite_lifetime: float = self._defaults["invite_lifetime"]
        self.reject_unicode_escapes: bool = self._defaults["reject_unicode_escapes"]
        self._offset = 0.0
        self._oas: dict[str, OfficialAccount] = {}
        self._tokens: dict[str, Token] = {}
        self._prune_at = 1024
        self._faults = FaultSet(self._seed)
        self._calls: deque[Call] = deque(maxlen=self._defaults["calls_limit"])
        self._call_seq = 0
        self._rng = random.Random(self._seed)

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> dict[str, Any]:
        """Move the emulator's clock forward (tests jump 48 h without sleeping)."""
        if not isinstance(seconds, int | float) or seconds < 0:
            raise ControlError(400, "seconds must be a number >= 0")
        with self._lock:
            self._offset += float(seconds)
            return {"now": self.now()}

    def reset(self) -> dict[str, Any]:
        """Back to an empty emulator: no accounts, tokens, faults, calls or pending pushes."""
        with self._lock:
            self._sender.reset()
            self._init_state()
            return {"now": self.now()}

    def configure(
        self,
        *,
        token_lifetime: float | None = None,
        token_overlap: float | None = None,
        stable_refresh_margin: float | None = None,
        invite_lifetime: float | None = None,
        calls_limit: int | None = None,
        reject_unicode_escapes: bool | None = None,
    ) -> dict[str, Any]:
        """Change timing rules and strictness at run time; returns the current settings."""
        with self._lock:
            for name, value in (
                ("token_lifetime", token_lifetime),
                ("token_overlap", token_overlap),
                ("stable_refresh_margin", stable_refresh_margin),
                ("invite_lifetime", invite_lifetime),
            ):
                if value is not None:
                    if not isinstance(value, int | float) or value < 0:
                        raise ControlError(400, f"{name} must be a number >= 0")
                    setattr(self, name, float(value))
            if calls_limit is not None:
                if not isinstance(calls_limit, int) or calls_limit < 1:
                    raise ControlError(400, "calls_limit must be a positive integer")
                self._calls = deque(self._calls, maxlen=calls_limit)
            if reject_unicode_escapes is not None:
                self.reject_unicode_escapes = bool(reject_unicode_escapes)
            return self._settings()

    def _settings(self) -> dict[str, Any]:
        return {
            "token_lifetime": self.token_lifetime,
            "token_overlap": self.token_overlap,
            "stable_refresh_margin": self.stable_refresh_margin,
            "invite_lifetime": self.invite_lifetime,
            "calls_limit": self._calls.maxlen,
            "reject_unicode_escapes": self.reject_unicode_escapes,
        }

    def _oa(self, appid: str | None) -> OfficialAccount:
        if appid is None:
            if len(self._oas) != 1:
                raise ControlError(
                    400, "appid is required when there is not exactly one official account"
                )
            return next(iter(self._oas.values()))
        oa = self._oas.get(appid)
        if oa is None:
            raise ControlError(40013, f"unknown appid {appid}")
        return oa

    # ------------------------------------------------------------------ WeChat API entry

    def process(self, request: api.ApiRequest) -> ApiOutcome:
        """Handle one WeChat API request: log it, apply faults, run the operation."""
        with self._lock:
            now = self.now()
            self._log_call(request, now)
            decision = self._faults.decide(
                request.path, token_endpoint=request.path in api.TOKEN_PATHS
            )
            if decision.invalidate_token:
                token = self._tokens.get(request.query.get("access_token", ""))
                if token is not None:
                    token.revoked_at = now
            if decision.drop:
                return ApiOutcome(drop=True, delay=decision.delay)
            if decision.status is not None:
                page = HTTP_FAULT_PAGES.get(
                    decision.status, f"<html><body>{decision.status} Error</body></html>".encode()
                )
                return ApiOutcome(
                    status=decision.status,
                    body=page,
                    content_type="text/html",
                    delay=decision.delay,
                )
            if decision.errcode is not None:
                return ApiOutcome(
                    payload=ApiError(decision.errcode).payload(), delay=decision.delay
                )
            try:
                answer = api.dispatch(self, request, now)
            except ApiError as exc:
                answer = exc.payload()
            if isinstance(answer, api.RawBody):
                return ApiOutcome(
                    body=answer.content,
                    content_type=answer.content_type,
                    delay=decision.delay,
                    headers={"Content-Disposition": f'attachment; filename="{answer.filename}"'},
                )
            return ApiOutcome(payload=answer, delay=decision.delay)

    def _log_call(self, request: api.ApiRequest, now: float) -> None:
        parsed: Any = None
        if request.body[:1] in (b"{", b"[") or request.body.lstrip()[:1] in (b"{", b"["):
            try:
                parsed = api.load_json(request.body)
            except ValueError:
                parsed = None
        self._call_seq += 1
        self._calls.append(
            Call(
                seq=self._call_seq,
                time=now,
                method=request.method,
                path=request.path,
                query=dict(request.query),
                query_string=request.query_string,
                headers=dict(request.headers),
                body=request.body[:CALL_BODY_LIMIT],
                json=parsed,
                body_size=len(request.body),
            )
        )

    # ------------------------------------------------------------------ WeChat's side
    #
    # The state changes the WeChat operations (kfadmin.emulator.api) and the demo seeder
    # are built from. Callers hold the lock: ``process`` takes it around every request.

    def find_official_account(self, appid: str) -> OfficialAccount | None:
        """The official account with this AppID, if the emulator has one."""
        return self._oas.get(appid)

    # ------------------------------------------------------------------ tokens

    def _new_token(self, oa: OfficialAccount, kind: str, now: float) -> Token:
        self._prune_tokens(now)
        # 128 URL-safe characters; WeChat's tokens are of that shape and ≤ 512 long.
        token = Token(
            value=secrets.token_urlsafe(96),
            appid=oa.appid,
            kind=kind,
            issued_at=now,
            expires_at=now + self.token_lifetime,
        )
        self._tokens[token.value] = token
        return token

    def _prune_tokens(self, now: float) -> None:
        # Amortised: scan only when the table doubled, so a client fetching thousands
        # of classic tokens stays linear. Dead tokens are kept a day so a late user
        # still gets 42001/40001 rather than "unknown".
        if len(self._tokens) < self._prune_at:
            return
        horizon = now - 86400
        dead = [
            v
            for v, t in self._tokens.items()
            if t.expires_at < horizon or (t.revoked_at is not None and t.revoked_at < horizon)
        ]
        for value in dead:
            del self._tokens[value]
        self._prune_at = max(1024, 2 * len(self._tokens))

    def issue_classic_token(self, oa: OfficialAccount, now: float) -> Token:
        """A new classic token (GET /cgi-bin/token); the previous one dies after the overlap."""
        previous = self._tokens.get(oa.classic_token)
        if previous is not None:
            # Each fetch invalidates the previous token after an overlap (§2.1).
            cutoff = now + self.token_overlap
            if previous.revoked_at is None or previous.revoked_at > cutoff:
                previous.revoked_at = cutoff
        token = self._new_token(oa, "classic", now)
        oa.classic_token = token.value
        return token

    def stable_token(self, oa: OfficialAccount, now: float, *, force: bool) -> Token:
        """The stable token (POST /cgi-bin/stable_token): the current one until near
        its expiry, or a new one when ``force`` (quota and 30 s rule permitting)."""
        current = self._tokens.get(oa.stable_token)
        alive = current is not None and (current.revoked_at is None or current.revoked_at > now)
        if force:
            if (
                current is not None
                and alive
                and now - oa.last_forced_refresh < FORCE_REFRESH_INTERVAL
            ):
                # Forced calls less than 30 s apart "will not refresh" (§2.2): the
                # current token comes back unchanged.
                return current
            day = int((now + QUOTA_DAY_OFFSET) // 86400)
            if oa.forced_refresh_day != day:
                oa.forced_refresh_day, oa.forced_refreshes_today = day, 0
            if oa.forced_refreshes_today >= FORCE_REFRESH_PER_DAY:
                raise ApiError(45009)
            oa.forced_refreshes_today += 1
            oa.last_forced_refresh = now
            if current is not None and alive:
                current.revoked_at = now  # force_refresh kills the previous token at once
        elif (
            current is not None and alive and current.expires_at - now > self.stable_refresh_margin
        ):
            return current
        # Normal-mode rotation near expiry leaves the old token valid until it expires.
        token = self._new_token(oa, "stable", now)
        oa.stable_token = token.value
        return token

    def authenticate(self, value: str | None, now: float) -> OfficialAccount:
        """The official account whose live token ``value`` is; ApiError otherwise."""
        if not value:
            raise ApiError(41001)
        token = self._tokens.get(value)
        if token is None:
            raise ApiError(40001 if TOKEN_SHAPE_RE.fullmatch(value) else 40014)
        if token.expires_at <= now:
            raise ApiError(42001)
        if token.revoked_at is not None and token.revoked_at <= now:
            raise ApiError(40001)
        oa = self._oas.get(token.appid)
        if oa is None:
            raise ApiError(40001)
        return oa

    # ------------------------------------------------------------------ kf accounts and sessions

    def create_account(self, oa: OfficialAccount, kf_account: str, nickname: str) -> KfAccount:
        """Add an unbound kf account with the next kf_id."""
        account = KfAccount(kf_id=oa.next_kf_id, kf_account=kf_account, nickname=nickname)
        oa.next_kf_id += 1
        oa.accounts[kf_account] = account
        return account

    def delete_account(self, oa: OfficialAccount, account: KfAccount, now: float) -> None:
        """Remove a kf account, closing its sessions first."""
        for customer in oa.customers.values():
            if customer.session_kf == account.kf_account:
                self.close_session(oa, customer, now=now)
        del oa.accounts[account.kf_account]

    def invite_status(self, account: KfAccount, now: float) -> str:
        """The account's invitation status; a waiting one past its expiry becomes "expired"."""
        if account.invite_status == "waiting" and now >= account.invite_expire_time:
            account.invite_status = "expired"
        return account.invite_status

    def bindings_of(self, kf_wx: str) -> int:
        """How many kf accounts, over all official accounts, this WeChat user is bound to."""
        return sum(1 for oa in self._oas.values() for a in oa.accounts.values() if a.kf_wx == kf_wx)

    def session_counts(self, oa: OfficialAccount) -> dict[str, int]:
        """Open sessions per kf account."""
        counts: dict[str, int] = {}
        for customer in oa.customers.values():
            if customer.session_kf:
                counts[customer.session_kf] = counts.get(customer.session_kf, 0) + 1
        return counts

    def append_record(
        self, oa: OfficialAccount, opercode: int, worker: str, openid: str, text: str, now: float
    ) -> int:
        """Add one entry to the account's message history (getmsglist); returns its id."""
        return oa.records.append(
            time=int(now), opercode=opercode, worker=worker, openid=openid, text=text
        )

    def open_session(
        self,
        oa: OfficialAccount,
        customer: Customer,
        account: KfAccount,
        *,
        opercode: int,
        now: float,
    ) -> None:
        """Give the customer a session with ``account``: out of the queue, into the
        history under ``opercode``, pushed as kf_create_session."""
        oa.queue.pop(customer.openid, None)
        customer.session_kf = account.kf_account
        customer.session_created = int(now)
        self.append_record(oa, opercode, account.kf_account, customer.openid, "", now)
        self._push_event(
            oa, customer.openid, now, "kf_create_session", [("KfAccount", account.kf_account)]
        )

    def close_session(self, oa: OfficialAccount, customer: Customer, *, now: float) -> None:
        """End the customer's session: recorded (1004) and pushed as kf_close_session."""
        kf_account = customer.session_kf
        customer.session_kf = ""
        customer.session_created = 0
        self.append_record(oa, 1004, kf_account, customer.openid, "", now)
        self._push_event(oa, customer.openid, now, "kf_close_session", [("KfAccount", kf_account)])

    def _customer(self, oa: OfficialAccount, openid: str | None) -> Customer:
        if openid is None:
            openid = new_openid(self._rng)
        if not isinstance(openid, str) or not api.OPENID_RE.fullmatch(openid):
            raise ControlError(400, "openid must be 1..64 characters of [A-Za-z0-9_-]")
        customer = oa.customers.get(openid)
        if customer is None:
            customer = Customer(openid=openid)
            oa.customers[openid] = customer
        return customer

    def _kf(self, oa: OfficialAccount, kf_account: str) -> KfAccount:
        account = oa.accounts.get(kf_account)
        if account is None:
            raise ControlError(65401, kf_account)
        return account

    # ------------------------------------------------------------------ callbacks (internal)

    def _push(
        self,
        oa: OfficialAccount,
        kind: str,
        openid: str,
        now: float,
        fields: list[tuple[str, str | int]],
    ) -> None:
        if not oa.callback_url:
            return
        push = prepare_push(
            url=oa.callback_url,
            token=oa.token,
            encoding_aes_key=oa.encoding_aes_key,
            appid=oa.appid,
            original_id=oa.original_id,
            mode=oa.callback_mode,
            fields=fields,
            openid=openid,
            timestamp=int(now),
            kind=kind,
            generation=self._sender.generation,
        )
        self._sender.submit(push)

    def _push_event(
        self,
        oa: OfficialAccount,
        openid: str,
        now: float,
        event: str,
        extra: Iterable[tuple[str, str | int]] = (),
    ) -> None:
        fields: list[tuple[str, str | int]] = [
            ("ToUserName", oa.original_id),
            ("FromUserName", openid),
            ("CreateTime", int(now)),
            ("MsgType", "event"),
            ("Event", event),
            *extra,
        ]
        self._push(oa, event, openid, now, fields)

    def _push_message(
        self, oa: OfficialAccount, openid: str, now: float, msgtype: str, text: str
    ) -> int:
        msg_id = oa.next_msg_id
        oa.next_msg_id += 1
        media_id = f"emu_media_{msg_id}"
        if msgtype != "text":
            self._customer_media(oa, media_id, msgtype, msg_id, now)
        if not oa.callback_url:
            return msg_id
        fields: list[tuple[str, str | int]] = [
            ("ToUserName", oa.original_id),
            ("FromUserName", openid),
            ("CreateTime", int(now)),
            ("MsgType", msgtype),
        ]
        if msgtype == "text":
            fields.append(("Content", text))
        elif msgtype == "image":
            fields += [
                ("PicUrl", f"{self.public_base_url}/__emulator__/media/{media_id}.jpg"),
                ("MediaId", media_id),
            ]
        elif msgtype == "voice":
            fields += [("MediaId", media_id), ("Format", "amr")]
        else:
            fields += [("MediaId", media_id), ("ThumbMediaId", f"{media_id}_thumb")]
        fields.append(("MsgId", msg_id))
        self._push(oa, "message", openid, now, fields)
        return msg_id

    def _customer_media(self, oa: OfficialAccount, media_id: str, msgtype: str, msg_id: int, now: float) -> None:
        """The file a customer's image, voice or video stands for, kept 3 days like
        any temporary media, so media/get can serve it."""
        oa.media.prune(now)
        shade = (msg_id * 47) % 200
        if msgtype == "image":
            content = image_bytes((40 + shade // 2, 90, 160), size=(120, 90))
        elif msgtype == "voice":
            content = amr_bytes(2)
        else:
            content = mp4_bytes()
            thumb = image_bytes((shade, 60, 60), size=(64, 48))
            oa.media.media[f"{media_id}_thumb"] = Media(f"{media_id}_thumb", "thumb", thumb, now)
        oa.media.media[media_id] = Media(media_id, msgtype, content, now)

    def store_media(
        self, oa: OfficialAccount, media_type: str, content: bytes, now: float, *, name: str = "", permanent: bool = False, media_id: str | None = None
    ) -> Media:
        """Keep a file under a new media_id (temporary: 3 days on the emulator clock)."""
        oa.media.prune(now)
        ident = media_id or oa.media.new_id(self._rng, "perm" if permanent else "tmp")
        media = Media(ident, media_type, content, now, permanent=permanent, name=name)
        oa.media.media[ident] = media
        return media

    def add_material(
        self,
        *,
        appid: str | None = None,
        kind: str,
        media_id: str | None = None,
        name: str = "",
        title: str = "",
        permanent: bool = True,
        url: str = "",
    ) -> dict[str, Any]:
        """Give the account a media it can send: an image, voice, video or thumb
        (generated bytes; ``permanent`` false makes it a 3-day temporary one), a news
        material (``kind="news"``, for mpnews) or a published article
        (``kind="article"``, for mpnewsarticle). Returns its id."""
        with self._lock:
            oa = self._oa(appid)
            now = self.now()
            if kind in ("image", "thumb"):
                content = image_bytes((90, 140, 70), size=(96, 96) if kind == "image" else (48, 48))
            elif kind == "voice":
                content = amr_bytes(3)
            elif kind == "video":
                content = mp4_bytes()
            elif kind in ("news", "article"):
                ident = media_id or oa.media.new_id(self._rng, kind)
                news = NewsMaterial(ident, [Article(title=title or ident, url=url or f"https://mp.weixin.qq.com/s/{ident}")], int(now), int(now))
                (oa.media.news if kind == "news" else oa.media.published)[ident] = news
                return {"kind": kind, "id": ident}
            else:
                raise ControlError(400, "kind must be image, voice, video, thumb, news or article")
            media = self.store_media(oa, kind, content, now, name=name, permanent=permanent, media_id=media_id)
            return {"kind": kind, "id": media.media_id, "created_at": int(media.created_at)}

    def material(self, appid: str, media_id: str) -> Media | None:
        """A permanent material's file (the ``url`` batchget_material gives for images)."""
        with self._lock:
            oa = self._oas.get(appid)
            media = oa.media.media.get(media_id) if oa is not None else None
            return media if media is not None and media.permanent else None

    def media_list(self, *, appid: str | None = None) -> dict[str, Any]:
        """What the account's media store holds: ids, types, sizes, ages."""
        with self._lock:
            oa = self._oa(appid)
            now = self.now()
            return {
                "media": [
                    {"media_id": m.media_id, "type": m.type, "size": len(m.content), "permanent": m.permanent,
                     "created_at": int(m.created_at), "alive": m.alive(now), "name": m.name}
                    for m in oa.media.media.values()
                ],
                "news": sorted(oa.media.news),
                "published": sorted(oa.media.published),
            }

    # ------------------------------------------------------------------ control: accounts

    def add_official_account(
        self,
        *,
        appid: str,
        secret: str,
        wechat_id: str,
        original_id: str | None = None,
        token: str | None = None,
        encoding_aes_key: str | None = None,
        callback_url: str = "",
        callback_mode: str = "plain",
        push_session_messages: bool = False,
        kf_enabled: bool = True,
    ) -> OfficialAccount:
        """Create an official account (OA) with its credentials; missing ones are generated."""
        for name, value in (("appid", appid), ("secret", secret), ("wechat_id", wechat_id)):
            if not isinstance(value, str) or not value:
                raise ControlError(400, f"{name} is required")
        if not WECHAT_ID_RE.fullmatch(wechat_id):
            raise ControlError(
                400, "wechat_id must start with a letter: [A-Za-z][A-Za-z0-9_-]{0,29}"
            )
        if callback_mode not in MODES:
            raise ControlError(400, f"callback_mode must be one of {', '.join(MODES)}")
        with self._lock:
            if appid in self._oas:
                raise ControlError(400, f"official account {appid} already exists")
            if encoding_aes_key is None:
                encoding_aes_key = "".join(self._rng.choice(AES_ALPHABET) for _ in range(43))
            if len(encoding_aes_key) != 43 or not all(
                ch in AES_ALPHABET for ch in encoding_aes_key
            ):
                raise ControlError(400, "encoding_aes_key must be 43 characters of [A-Za-z0-9]")
            if len(base64.b64decode(encoding_aes_key + "=")) != 32:
                raise ControlError(400, "encoding_aes_key does not decode to 32 bytes")
            oa = OfficialAccount(
                appid=appid,
                secret=secret,
                wechat_id=wechat_id,
                original_id=original_id
                or "gh_" + "".join(self._rng.choice("0123456789abcdef") for _ in range(12)),
                token=token or "".join(self._rng.choice(AES_ALPHABET) for _ in range(32)),
                encoding_aes_key=encoding_aes_key,
                callback_url=callback_url,
                callback_mode=callback_mode,
                push_session_messages=push_session_messages,
                kf_enabled=kf_enabled,
            )
            self._oas[appid] = oa
            return oa

    def set_callback(
        self,
        *,
        appid: str | None = None,
        url: str = "",
        mode: str = "plain",
        push_session_messages: bool | None = None,
    ) -> dict[str, Any]:
        """Point an OA's message push at ``url`` ("" turns pushes off) in plain/compat/safe mode."""
        if mode not in MODES:
            raise ControlError(400, f"mode must be one of {', '.join(MODES)}")
        if url and not url.startswith(("http://", "https://")):
            raise ControlError(400, "url must be http(s)")
        with self._lock:
            oa = self._oa(appid)
            oa.callback_url = url
            oa.callback_mode = mode
            if push_session_messages is not None:
                oa.push_session_messages = bool(push_session_messages)
            return oa.summary()

    def seed_demo(self, seed: int = 1) -> OfficialAccount:
        """Add the demo OA (see demo.py): agents, customers, a queue, sessions, 30 days of history."""
        from .demo import populate_demo

        with self._lock:
            return populate_demo(self, seed=seed)

    def add_agent(
        self,
        *,
        appid: str | None = None,
        prefix: str | None = None,
        kf_account: str | None = None,
        nickname: str | None = None,
        kf_wx: str | None = None,
        bound: bool = True,
        online: bool = True,
    ) -> dict[str, Any]:
        """Shortcut for add + invite + accept (+ online): a ready-to-use agent."""
        with self._lock:
            oa = self._oa(appid)
            if kf_account is None:
                if not prefix:
                    raise ControlError(400, "prefix or kf_account is required")
                kf_account = f"{prefix}@{oa.wechat_id}"
            api.check_account_name(oa, kf_account)
            name = api.check_nickname(
                nickname if nickname is not None else kf_account.partition("@")[0]
            )
            if kf_account in oa.accounts:
                raise ApiError(65406)
            if len(oa.accounts) >= api.MAX_ACCOUNTS:
                raise ApiError(65405)
            wx = kf_wx or "wxid_" + kf_account.partition("@")[0]
            if bound:
                if not api.INVITE_WX_RE.fullmatch(wx):
                    raise ApiError(65409)
                if any(a.kf_wx == wx for a in oa.accounts.values()):
                    raise ApiError(65407)
                if self.bindings_of(wx) >= api.MAX_BINDINGS_PER_WX:
                    raise ApiError(65410)
            elif online:
                raise ApiError(65402)
            account = self.create_account(oa, kf_account, name)
            if bound:
                account.kf_wx = wx
                account.online = online
            return self._account_view(oa, account)

    def _account_view(self, oa: OfficialAccount, account: KfAccount) -> dict[str, Any]:
        entry = api.account_entry(self, oa, account, self.public_base_url, self.now())
        entry["online"] = account.online
        entry["accepted_case"] = self.session_counts(oa).get(account.kf_account, 0)
        return entry

    def add_customer(
        self, *, appid: str | None = None, openid: str | None = None, subscribed: bool = True
    ) -> dict[str, Any]:
        """A follower who has not interacted (no reply window); returns its openid."""
        with self._lock:
            oa = self._oa(appid)
            customer = self._customer(oa, openid)
            customer.subscribed = bool(subscribed)
            return {"openid": customer.openid}

    # ------------------------------------------------------------------ control: playing customers and agents

    def customer_writes(
        self,
        *,
        appid: str | None = None,
        openid: str | None = None,
        text: str = "",
        msgtype: str = "text",
        queue: bool = True,
    ) -> dict[str, Any]:
        """The customer sends a message: opens the 48 h window (5 sends), then
        either reaches the agent serving them (record 2003) or the OA (2001) and,
        with ``queue``, joins the waiting queue (1000)."""
        if msgtype not in CUSTOMER_MSGTYPES:
            raise ControlError(400, f"msgtype must be one of {', '.join(CUSTOMER_MSGTYPES)}")
        if msgtype == "text" and (not isinstance(text, str) or not text):
            raise ControlError(400, "text is required for a text message")
        with self._lock:
            oa = self._oa(appid)
            now = self.now()
            customer = self._customer(oa, openid)
            customer.subscribed = True
            grant_message(customer, now)
            customer.last_interaction = now
            customer.latest_time = int(now)
            shown = text if msgtype == "text" else f"[{msgtype}]"
            queued = False
            if customer.session_kf:
                self.append_record(oa, 2003, customer.session_kf, customer.openid, shown, now)
                msg_id = (
                    self._push_message(oa, customer.openid, now, msgtype, text)
                    if oa.push_session_messages
                    else None
                )
            else:
                self.append_record(oa, 2001, "", customer.openid, shown, now)
                msg_id = self._push_message(oa, customer.openid, now, msgtype, text)
                if queue and customer.openid not in oa.queue:
                    oa.queue[customer.openid] = int(now)
                    self.append_record(oa, 1000, "", customer.openid, "", now)
                queued = customer.openid in oa.queue
            return {
                "openid": customer.openid,
                "msgid": msg_id,
                "kf_account": customer.session_kf,
                "queued": queued,
                **self._window_view(customer, now),
            }

    def customer_event(
        self,
        *,
        appid: str | None = None,
        openid: str | None = None,
        event: str = "follow",
        event_key: str = "",
    ) -> dict[str, Any]:
        """follow / menu_click / scan grant 3 sends within 60 s; unfollow closes the window."""
        wire = EVENT_ALIASES.get(event)
        if wire is None:
            raise ControlError(400, "event must be follow, unfollow, menu_click or scan")
        with self._lock:
            oa = self._oa(appid)
            now = self.now()
            customer = self._customer(oa, openid)
            extra: list[tuple[str, str | int]] = []
            if wire == "unsubscribe":
                customer.subscribed = False
                close_window(customer)
            else:
                customer.subscribed = True
                grant_event(customer, now)
                customer.last_interaction = now
                if wire == "CLICK":
                    extra.append(("EventKey", event_key or "MENU_CONTACT_KF"))
                elif wire == "SCAN":
                    extra += [
                        ("EventKey", event_key or "1"),
                        ("Ticket", "emu_ticket_" + (event_key or "1")),
                    ]
                elif event_key:
                    extra.append(("EventKey", event_key))
            self._push_event(oa, customer.openid, now, wire, extra)
            return {
                "openid": customer.openid,
                "event": wire,
                **self._window_view(customer, now),
            }

    def agent_online(
        self, *, appid: str | None = None, kf_account: str, online: bool = True
    ) -> dict[str, Any]:
        """The agent logs in to (or out of) the web client; only bound agents can."""
        with self._lock:
            oa = self._oa(appid)
            account = self._kf(oa, kf_account)
            if not account.bound:
                raise ControlError(65402, kf_account)
            account.online = bool(online)
            return self._account_view(oa, account)

    def agent_accept(
        self, *, appid: str | None = None, kf_account: str, openid: str | None = None
    ) -> dict[str, Any]:
        """The agent takes a waiting customer (the oldest unless ``openid``): record 1001."""
        with self._lock:
            oa = self._oa(appid)
            now = self.now()
            account = self._kf(oa, kf_account)
            if not account.bound:
                raise ControlError(65402, kf_account)
            if not account.online:
                raise ControlError(65415, kf_account)
            if openid is None:
                if not oa.queue:
                    raise ControlError(400, "nobody is waiting")
                openid = next(iter(oa.queue))
            elif openid not in oa.queue:
                raise ControlError(400, f"{openid} is not waiting")
            customer = oa.customers[openid]
            self.open_session(oa, customer, account, opercode=1001, now=now)
            return {
                "openid": openid,
                "kf_account": kf_account,
                "createtime": customer.session_created,
            }

    def agent_transfer(
        self, *, appid: str | None = None, openid: str, to_kf_account: str
    ) -> dict[str, Any]:
        """The serving agent hands the session to another online agent (kf_switch_session)."""
        with self._lock:
            oa = self._oa(appid)
            now = self.now()
            customer = oa.customers.get(openid)
            if customer is None or not customer.session_kf:
                raise ControlError(65413, openid)
            target = self._kf(oa, to_kf_account)
            if not target.bound:
                raise ControlError(65402, to_kf_account)
            if not target.online:
                raise ControlError(65415, to_kf_account)
            source = customer.session_kf
            if source == to_kf_account:
                raise ControlError(400, "the session is already with that agent")
            customer.session_kf = to_kf_account
            self.append_record(oa, 1003, to_kf_account, openid, "", now)
            self._push_event(
                oa,
                openid,
                now,
                "kf_switch_session",
                [("FromKfAccount", source), ("ToKfAccount", to_kf_account)],
            )
            return {"openid": openid, "kf_account": to_kf_account, "from_kf_account": source}

    def invite_respond(
        self, *, appid: str | None = None, kf_account: str, action: str
    ) -> dict[str, Any]:
        """The invited WeChat user accepts or rejects, or the invitation expires now."""
        if action not in ("accept", "reject", "expire"):
            raise ControlError(400, "action must be accept, reject or expire")
        with self._lock:
            oa = self._oa(appid)
            now = self.now()
            account = self._kf(oa, kf_account)
            if self.invite_status(account, now) != "waiting":
                raise ControlError(400, f"{kf_account} has no pending invitation")
            if action == "accept":
                if self.bindings_of(account.invite_wx) >= api.MAX_BINDINGS_PER_WX:
                    raise ControlError(65410, account.invite_wx)
                account.kf_wx = account.invite_wx
                account.invite_wx = ""
                account.invite_status = ""
                account.invite_expire_time = 0
            elif action == "reject":
                account.invite_status = "rejected"
            else:
                account.invite_status = "expired"
                account.invite_expire_time = min(account.invite_expire_time, int(now))
            return self._account_view(oa, account)

    # ------------------------------------------------------------------ control: history

    def generate_records(
        self,
        *,
        appid: str | None = None,
        count: int,
        days: float | None = None,
        start: int | None = None,
        end: int | None = None,
        workers: list[str] | None = None,
        openids: list[str] | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Append ``count`` history records of realistic dialogues between start and end
        (default: the last ``days``, default 1). History only: no live state changes."""
        from .generate import generate

        if not isinstance(count, int) or count < 0 or count > 50_000_000:
            raise ControlError(400, "count must be an integer 0..50,000,000")
        with self._lock:
            oa = self._oa(appid)
            now = self.now()
            if start is None and end is None:
                span_days = 1.0 if days is None else days
                if not isinstance(span_days, int | float) or span_days <= 0:
                    raise ControlError(400, "days must be > 0")
                end = int(now)
                start = end - int(span_days * 86400)
            elif start is None or end is None:
                raise ControlError(400, "give both start and end (or days)")
            if not isinstance(start, int) or not isinstance(end, int) or end < start:
                raise ControlError(400, "start and end must be unix seconds with start <= end")
            if workers is None:
                workers = [a.kf_account for a in oa.accounts.values() if a.bound] or list(
                    oa.accounts
                )
                if not workers:
                    workers = [f"kf{n:03d}@{oa.wechat_id}" for n in range(1, 6)]
            if openids is None:
                openids = list(oa.customers)
                if not openids:
                    rng = random.Random(self._seed if seed is None else seed)
                    wanted = max(10, min(5000, count // 20))
                    openids = [new_openid(rng) for _ in range(wanted)]
                    for openid in openids:
                        oa.customers.setdefault(openid, Customer(openid=openid))
            if not workers or not openids:
                raise ControlError(400, "workers and openids must not be empty")
            began = time.perf_counter()
            generate(
                oa.records,
                count=count,
                start=start,
                end=end,
                workers=list(workers),
                openids=list(openids),
                seed=self._seed if seed is None else seed,
            )
            elapsed = time.perf_counter() - began
            return {
                "generated": count,
                "total": len(oa.records),
                "start": start,
                "end": end,
                "seconds": round(elapsed, 3),
            }

    # ------------------------------------------------------------------ control: faults & tokens

    def add_fault(
        self,
        *,
        kind: str,
        rate: float | None = None,
        next: int | None = None,
        path_prefix: str = "",
        errcode: int = -1,
        status: int = 500,
        delay: float = 1.0,
    ) -> FaultRule:
        """Inject a fault: errcode (default -1), http (status), slow (delay s), drop, invalidate_token."""
        with self._lock:
            return self._faults.add(
                kind=kind,
                rate=rate,
                next=next,
                path_prefix=path_prefix,
                errcode=errcode,
                status=status,
                delay=delay,
            )

    def faults(self) -> list[FaultRule]:
        with self._lock:
            return self._faults.rules()

    def clear_faults(self) -> dict[str, Any]:
        with self._lock:
            cleared = len(self._faults.rules())
            self._faults.clear()
            return {"cleared": cleared}

    def invalidate_tokens(self, *, appid: str | None = None) -> dict[str, Any]:
        """Revoke every token now (of one OA, or of all when appid is None): callers get 40001."""
        with self._lock:
            now = self.now()
            count = 0
            for token in self._tokens.values():
                if appid is not None and token.appid != appid:
                    continue
                if token.revoked_at is None or token.revoked_at > now:
                    token.revoked_at = now
                    count += 1
            return {"invalidated": count}

    def issue_token(self, *, appid: str | None = None, kind: str = "stable") -> dict[str, Any]:
        """A token without an HTTP round trip (same rules as the endpoints), for in-process tests."""
        if kind not in ("classic", "stable"):
            raise ControlError(400, "kind must be classic or stable")
        with self._lock:
            oa = self._oa(appid)
            now = self.now()
            token = (
                self.issue_classic_token(oa, now)
                if kind == "classic"
                else self.stable_token(oa, now, force=False)
            )
            return {"access_token": token.value, "expires_in": max(0, int(token.expires_at - now))}

    # ------------------------------------------------------------------ control: dumps

    def state(self, *, appid: str | None = None, customers: bool = True) -> dict[str, Any]:
        """Everything observable, for tests and debugging."""
        with self._lock:
            now = self.now()
            oas = [self._oa(appid)] if appid is not None else list(self._oas.values())
            dumped = []
            for oa in oas:
                load = self.session_counts(oa)
                entry: dict[str, Any] = oa.summary()
                entry["accounts"] = [
                    {
                        **api.account_entry(self, oa, a, self.public_base_url, now),
                        "online": a.online,
                        "accepted_case": load.get(a.kf_account, 0),
                    }
                    for a in oa.accounts.values()
                ]
                entry["queue"] = [
                    {"openid": o, "arrival": t, "latest_time": oa.customers[o].latest_time}
                    for o, t in oa.queue.items()
                ]
                entry["sessions"] = sorted(
                    (
                        {
                            "openid": c.openid,
                            "kf_account": c.session_kf,
                            "createtime": c.session_created,
                        }
                        for c in oa.customers.values()
                        if c.session_kf
                    ),
                    key=lambda s: (s["createtime"], s["openid"]),
                )
                entry["customer_count"] = len(oa.customers)
                if customers:
                    entry["customers"] = [
                        self._customer_view(c, now) for c in oa.customers.values()
                    ]
                entry["record_count"] = len(oa.records)
                entry["tokens"] = [
                    {
                        "access_token": t.value,
                        "kind": t.kind,
                        "issued_at": t.issued_at,
                        "expires_at": t.expires_at,
                        "revoked_at": t.revoked_at,
                    }
                    for t in self._tokens.values()
                    if t.appid == oa.appid
                ]
                dumped.append(entry)
            return {
                "now": now,
                "settings": self._settings(),
                "official_accounts": dumped,
                "faults": [r.to_dict() for r in self._faults.rules()],
            }

    def _customer_view(self, c: Customer, now: float) -> dict[str, Any]:
        return {
            "openid": c.openid,
            "subscribed": c.subscribed,
            **self._window_view(c, now),
            "last_interaction": c.last_interaction if c.last_interaction != NEVER else None,
            "typing": c.typing_until > now,
            "kf_account": c.session_kf,
            "session_created": c.session_created,
            "latest_time": c.latest_time,
        }

    @staticmethod
    def _window_view(c: Customer, now: float) -> dict[str, Any]:
        def grant(expires_at: float, remaining: int) -> dict[str, Any] | None:
            if not c.subscribed or expires_at <= now:
                return None
            return {"expires_at": expires_at, "remaining": remaining}

        expires = window_expires_at(c, now)
        return {
            "window_open": window_open(c, now),
            "window_expires_at": expires if expires != NEVER else None,
            "remaining": sends_left(c, now),
            # The two grants behind those totals (None when not running).
            "message_grant": grant(c.message_expires_at, c.message_remaining),
            "event_grant": grant(c.event_expires_at, c.event_remaining),
        }

    def customer(self, *, appid: str | None = None, openid: str) -> dict[str, Any]:
        """One customer's window, budget, typing and session state."""
        with self._lock:
            oa = self._oa(appid)
            c = oa.customers.get(openid)
            if c is None:
                raise ControlError(40003, openid)
            return self._customer_view(c, self.now())

    def records(
        self,
        *,
        appid: str | None = None,
        start: int | None = None,
        end: int | None = None,
        after_id: int = 0,
        limit: int = 1000,
        openid: str | None = None,
        opercode: int | None = None,
    ) -> dict[str, Any]:
        """Records with ids (optionally by time range / openid / opercode), plus the total."""
        with self._lock:
            oa = self._oa(appid)
            rows = oa.records.dump(
                start=start,
                end=end,
                after_id=after_id,
                limit=limit,
                openid=openid,
                opercode=opercode,
            )
            return {"records": rows, "total": len(oa.records)}

    def record_store(self, *, appid: str | None = None) -> Any:
        """The RecordStore itself (in-process only), for heavy assertions in tests."""
        with self._lock:
            return self._oa(appid).records

    def calls(self, *, limit: int | None = None, path_prefix: str = "") -> list[Call]:
        """The last API requests received, oldest first (control requests are not logged)."""
        with self._lock:
            found = [c for c in self._calls if c.path.startswith(path_prefix)]
            return found[-limit:] if limit else found

    def clear_calls(self) -> dict[str, Any]:
        with self._lock:
            cleared = len(self._calls)
            self._calls.clear()
            return {"cleared": cleared}

    def callbacks(self) -> list[Delivery]:
        """Outcome of each push attempted so far (newest last)."""
        return list(self._sender.deliveries)

    def flush_callbacks(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until queued pushes were attempted."""
        return {"flushed": self._sender.flush(timeout)}

    def verify_callback_url(self, *, appid: str | None = None) -> dict[str, Any]:
        """Do WeChat's URL check (GET with echostr) against the OA's callback URL."""
        with self._lock:
            oa = self._oa(appid)
            url, token = oa.callback_url, oa.token
        if not url:
            raise ControlError(400, "no callback url configured")
        return verify_url(url=url, token=token)

    def headimg(self, appid: str, kf_id: int) -> bytes | None:
        """The uploaded avatar bytes (served at the URL in kf_headimgurl)."""
        with self._lock:
            oa = self._oas.get(appid)
            if oa is None:
                return None
            for account in oa.accounts.values():
                if account.kf_id == kf_id:
                    return account.headimg
            return None

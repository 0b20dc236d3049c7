"""The emulator's in-memory state: official accounts, kf accounts, customers, tokens."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

from .records import RecordStore

NEVER = float("-inf")
OPENID_ALPHABET = string.ascii_letters + string.digits + "_-"


def new_openid(rng: random.Random) -> str:
    # Real openids are 28 characters starting with "o".
    return "o" + "".join(rng.choice(OPENID_ALPHABET) for _ in range(27))


@dataclass(slots=True)
class KfAccount:
    kf_id: int
    kf_account: str
    nickname: str
    headimg: bytes | None = None
    headimg_version: int = 0
    kf_wx: str = ""
    invite_wx: str = ""
    invite_expire_time: int = 0
    # "", "waiting", "rejected" or "expired"; "waiting" turns into "expired" lazily
    # when read after invite_expire_time (see Emulator._invite_status).
    invite_status: str = ""
    online: bool = False

    @property
    def bound(self) -> bool:
        return bool(self.kf_wx)


@dataclass(slots=True)
class Customer:
    openid: str
    subscribed: bool = True
    # Reply window and budget, wechat-kf-api.md §6.4 "Emulator model".
    window_expires_at: float = NEVER
    remaining: int = 0
    # Last customer-originated interaction (message or event); typing needs one < 30 s old.
    last_interaction: float = NEVER
    typing_until: float = NEVER
    session_kf: str = ""
    session_created: int = 0
    latest_time: int = 0


@dataclass(slots=True)
class Token:
    value: str
    appid: str
    kind: str  # "classic" or "stable"
    issued_at: float
    expires_at: float
    revoked_at: float | None = None


@dataclass
class OfficialAccount:
    appid: str
    secret: str
    wechat_id: str
    original_id: str
    token: str
    encoding_aes_key: str
    callback_url: str = ""
    callback_mode: str = "plain"  # "plain", "compat" or "safe"
    # WeChat forwards a customer's messages to the kf system, not the developer URL,
    # while a session is open; this switch pushes them anyway (off = faithful).
    push_session_messages: bool = False
    # False makes every kf endpoint answer 65400 like an OA without the kf feature.
    kf_enabled: bool = True
    accounts: dict[str, KfAccount] = field(default_factory=dict)
    next_kf_id: int = 1001
    customers: dict[str, Customer] = field(default_factory=dict)
    # openid -> arrival time; dicts keep insertion order, which is the arrival order.
    queue: dict[str, int] = field(default_factory=dict)
    records: RecordStore = field(default_factory=RecordStore)
    stable_token: str = ""
    classic_token: str = ""
    next_msg_id: int = 24_000_000_000_000_001

    def summary(self) -> dict[str, Any]:
        return {
            "appid": self.appid,
            "secret": self.secret,
            "wechat_id": self.wechat_id,
            "original_id": self.original_id,
            "token": self.token,
            "encoding_aes_key": self.encoding_aes_key,
            "callback_url": self.callback_url,
            "callback_mode": self.callback_mode,
            "push_session_messages": self.push_session_messages,
            "kf_enabled": self.kf_enabled,
        }

    to_dict = summary


# Reply-window rules (wechat-kf-api.md §6.4): a customer message grants 5 sends for
# 48 h, a follow / menu click / scan grants 3 sends for 60 s. Budgets do not add up:
# the remaining count becomes the larger of what is left and the new grant.
MESSAGE_BUDGET = 5
MESSAGE_WINDOW = 48 * 3600
EVENT_BUDGET = 3
EVENT_WINDOW = 60


def grant_window(customer: Customer, *, budget: int, window: float, now: float) -> None:
    if customer.window_expires_at <= now:
        # An expired window's leftover budget must not carry into the new one.
        customer.remaining = 0
    customer.remaining = max(customer.remaining, budget)
    customer.window_expires_at = max(customer.window_expires_at, now + window)


def window_open(customer: Customer, now: float) -> bool:
    return customer.subscribed and customer.window_expires_at > now

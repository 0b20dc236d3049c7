"""The emulator's in-memory state: official accounts, kf accounts, customers, tokens."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

from .media import MediaStore
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
    # when read after invite_expire_time (see Emulator.invite_status).
    invite_status: str = ""
    online: bool = False

    @property
    def bound(self) -> bool:
        return bool(self.kf_wx)


@dataclass(slots=True)
class Customer:
    openid: str
    subscribed: bool = True
    # Reply grants (see the rules above grant_message): a customer message's and an
    # event's, kept apart so neither stretches or refills the other.
    message_expires_at: float = NEVER
    message_remaining: int = 0
    event_expires_at: float = NEVER
    event_remaining: int = 0
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
    # stable_token force_refresh limits (§2.2): when the last forced rotation happened,
    # and how many were made on which quota day (see Emulator.stable_token).
    last_forced_refresh: float = NEVER
    forced_refresh_day: int = -1
    forced_refreshes_today: int = 0
    next_msg_id: int = 24_000_000_000_000_001
    # Uploads, customers' media, permanent materials and published articles.
    media: MediaStore = field(default_factory=MediaStore)

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


# Reply-window rules (wechat-kf-api.md §6.4, send page D-send and its 2023-06-12 rules):
# a customer message grants 5 sends for 48 h; a follow, menu click or QR scan grants 3
# sends for 1 minute, and "does not create the user-message quota". The two grants are
# therefore kept apart: each trigger resets only its own grant (5 or 3, never added to
# what is left, like the mini-program rule that counts do not accumulate), so a click
# after the message grant is used up gives 3 sends for one minute, and the message
# grant's 48 h are untouched. A send spends the grant that expires first (our choice:
# the shorter grant would otherwise lapse unused).
MESSAGE_BUDGET = 5
MESSAGE_WINDOW = 48 * 3600
EVENT_BUDGET = 3
EVENT_WINDOW = 60


def grant_message(customer: Customer, now: float) -> None:
    customer.message_remaining = MESSAGE_BUDGET
    customer.message_expires_at = now + MESSAGE_WINDOW


def grant_event(customer: Customer, now: float) -> None:
    customer.event_remaining = EVENT_BUDGET
    customer.event_expires_at = now + EVENT_WINDOW


def close_window(customer: Customer) -> None:
    customer.message_expires_at = customer.event_expires_at = NEVER
    customer.message_remaining = customer.event_remaining = 0


def window_open(customer: Customer, now: float) -> bool:
    """Some grant is still running (sends may be used up: that is 45047, not 45015)."""
    return customer.subscribed and (
        customer.message_expires_at > now or customer.event_expires_at > now
    )


def window_expires_at(customer: Customer, now: float) -> float:
    """When the last running grant ends (NEVER when none runs)."""
    if not window_open(customer, now):
        return NEVER
    return max(t for t in (customer.message_expires_at, customer.event_expires_at) if t > now)


def sends_left(customer: Customer, now: float) -> int:
    if not customer.subscribed:
        return 0
    left = 0
    if customer.message_expires_at > now:
        left += customer.message_remaining
    if customer.event_expires_at > now:
        left += customer.event_remaining
    return left


def spend_send(customer: Customer, now: float) -> bool:
    """Use one send of the grant that expires first; False when none is left."""
    if not customer.subscribed:
        return False
    grants = []
    if customer.event_expires_at > now and customer.event_remaining > 0:
        grants.append((customer.event_expires_at, "event"))
    if customer.message_expires_at > now and customer.message_remaining > 0:
        grants.append((customer.message_expires_at, "message"))
    if not grants:
        return False
    if min(grants)[1] == "event":
        customer.event_remaining -= 1
    else:
        customer.message_remaining -= 1
    return True

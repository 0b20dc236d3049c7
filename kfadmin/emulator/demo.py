"""The demo official account: a small online shop's customer service, 30 days in.

``python -m kfadmin.emulator --seed demo`` and ``Emulator.seed_demo(seed)`` build it.
Everything random comes from ``random.Random(seed)`` and times are relative to the
emulator clock, so the same seed at the same clock gives the same state. The
DEMO_* constants let kfadmin's demo setup configure itself without asking.
"""

from __future__ import annotations

import base64
import random
from typing import TYPE_CHECKING

from .dialogues import TEMPLATES_EN, Line, pick_follow_up, pick_template, render
from .media import Article, Media, NewsMaterial, amr_bytes, image_bytes, mp4_bytes
from .models import (
    Customer,
    OfficialAccount,
    grant_message,
    new_openid,
    spend_send,
)

if TYPE_CHECKING:
    from .core import Emulator

DEMO_APPID = "wx7c3e5a9b2d4f6081"
DEMO_SECRET = "3f9a1c7e5b2d8f4a6c0e9b7d1f3a5c8e"
DEMO_WECHAT_ID = "qinghe_life"
DEMO_ORIGINAL_ID = "gh_5a8c3e1f7b2d"
DEMO_CALLBACK_TOKEN = "qingheKfToken2024"
DEMO_ENCODING_AES_KEY = "Qh7kF2mZp9Xc4Lr8Tn1Vb6Yw3Js5Gd0Ha2Ke7Mu9PqR"
DEMO_NAME = "青禾生活馆"

DEMO_CUSTOMERS = 200
DEMO_WAITING = 8
DEMO_DAYS = 30

# prefix, nickname, state, WeChat ID of the operator (bound or invited)
DEMO_AGENTS: list[tuple[str, str, str, str]] = [
    ("xiaomei", "小美", "online", "chenmei_88"),
    ("ahua", "阿华", "online", "lihua_kf01"),
    ("linlin", "琳琳", "online", "linlin_0321"),
    ("dawei", "大伟", "online", "wangdawei66"),
    ("tingting", "婷婷", "online", "tingting_zh"),
    ("zhang_lead", "张主管", "online", "zhangjing_lead"),
    ("xiaoyu", "小雨", "offline", "xiaoyu_rain9"),
    ("kevin", "Kevin王", "offline", "kevin_wang21"),
    ("zhouzhou", "周周", "pending", "zhou_jie1995"),
    ("aqiang", "阿强", "rejected", "qiang_liu77"),
    ("newbie", "新人小李", "unbound", ""),
    ("night_kf", "夜班客服", "unbound", ""),
]
# Open sessions per online agent at seed time (the supervisor takes none).
DEMO_SESSIONS = {"xiaomei": 3, "ahua": 2, "linlin": 2, "dawei": 2, "tingting": 1}

# A 96x96 JPEG silhouette, so the demo's agents have an avatar to show.
DEMO_AVATAR = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAA0JCgsKCA0LCgsODg0PEyAVExISEyccHhcgLikxMC4pLSwzOko+MzZGNywtQFdB"
    "RkxOUlNSMj5aYVpQYEpRUk//2wBDAQ4ODhMREyYVFSZPNS01T09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09P"
    "T09PT09PT09PT09PT0//wAARCABgAGADASIAAhEBAxEB/8QAGwABAAIDAQEAAAAAAAAAAAAAAAUGAQMEAgf/xAAzEAACAQMB"
    "BAgFAwUAAAAAAAABAgADBBEFBhIhMRMiQVFhgZHRFDVxobEjssEyQnJzgv/EABkBAQADAQEAAAAAAAAAAAAAAAABAgQDBf/E"
    "AB0RAQEAAwEBAAMAAAAAAAAAAAABAgMREjETIUH/2gAMAwEAAhEDEQA/APosREhQiIgIicdxqthbNu1blA2SCFyxBHfjlCLZ"
    "PrsicNLWNOrMVS6QEDPXyo9Tid0EsvwiIhJERAREQEwzKilnYKqjJJOABMyH2mujQ08UUbD12weed0c/4HnCMsvM6idZ1p7t"
    "zRtWZLcZBI4Gp9fDw9fCHiJRgyyuV7SSOlatWsKoVi1S3PApnl4juP5kdEEtl7H0OjWp16K1aLh0cZBE9yvbK3RZKto7Z3eu"
    "g48u3yzj1MsMtG7DL1j0iIkrEREBK7tarFbVgp3QXBOOAJx7GWKcWr2fx2nvSUfqDrU/8h78R5yKpsx9Y2KNEyysjFXUqynB"
    "BGCDMSjAREQJvZRWOoVWCndFIgnHAEkexlrkVs/YtZ2JeqpWtWO8wPMDsH8+clZeN2rHmP7IiJLoREQERPFatToUWq1nCIgy"
    "SYEbq+i09QPS02FKuBxOOD92feVy40fULdsNbO4JIBpjeBx9OXnJi82mpqCtlSLtnG/U4L6cz9pHVdodRqMClRKQxjCIMffM"
    "reMuy67XNS0rUKzFUtKoIGeuu6PU4lg0rQVtKor3TrVqr/SoHVU9/ifxIenr+pI4Zqy1AP7WQYPpgzvtNp+YvKH0al+ME/Xj"
    "mJxGH45Vjiaba5o3dHpbeoHTOMjsM3SzX9IiICIiBovLqjZ27V67YUch2se4eMpeo6hW1C46SrwUcEQHgo9/Gb9dvze3xVCD"
    "RokqmO3vOe3OPTEjZW1j27PV5PhERKuJERA3Wd1Ws7ha9BsMOY7GHcfCXXTtQo6hb9JS4MODoTxU+3jKJOvTL1rC9WsvFT1X"
    "GM5Xt85Mrrr2ebz+L3EwrK6hkYMrDIIOQRMy7aTm1Gv8Np9esG3WVDunGcNyH3xOmRu0HyW4/wCf3CFcrzG1S4iJzeeREQER"
    "EBERAumgV+n0mllt5qeUbhjGOQ9MSSkLsr8sqf7j+1ZNS8b9d7jH/9k="
)

Event = tuple[int, int, int, str, str, str]  # time, seq, opercode, worker, openid, text


class _Timeline:
    """Collects records out of order; sorted once at the end."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, t: int, opercode: int, worker: str, openid: str, text: str = "") -> None:
        self.events.append((t, len(self.events), opercode, worker, openid, text))

    def dialogue(
        self,
        rng: random.Random,
        lines: list[Line],
        *,
        t0: int,
        agent: str,
        openid: str,
        nick: str,
        stop: int | None = None,
    ) -> int:
        """Customer writes, queues, agent accepts, they talk; returns the last time used."""
        t = t0
        self.add(t, 2001, "", openid, render(lines[0][1], rng, nick=nick))
        self.add(t, 1000, "", openid)
        t += rng.randint(10, 180)
        self.add(t, 1001, agent, openid)
        for role, text in lines[1:]:
            gap = rng.randint(10, 120)
            if stop is not None and t + gap > stop:
                break
            t += gap
            self.add(t, 2003 if role == "c" else 2002, agent, openid, render(text, rng, nick=nick))
        return t


def populate_demo(emu: Emulator, *, seed: int = 1) -> OfficialAccount:
    """Build the demo OA inside ``emu`` (caller holds the emulator lock).

    The steps draw from one ``random.Random(seed)`` in this order; reordering them
    changes what a seed builds."""
    rng = random.Random(seed)
    now = int(emu.now())
    oa = emu.add_official_account(
        appid=DEMO_APPID,
        secret=DEMO_SECRET,
        wechat_id=DEMO_WECHAT_ID,
        original_id=DEMO_ORIGINAL_ID,
        token=DEMO_CALLBACK_TOKEN,
        encoding_aes_key=DEMO_ENCODING_AES_KEY,
    )
    nick_of, bound = _add_agents(emu, oa, rng, now)
    openids = _add_customers(oa, rng)
    timeline = _Timeline()
    busy_until = _past_month(timeline, rng, openids=openids, bound=bound, nick_of=nick_of, now=now)

    idle = [o for o in openids if busy_until[o] < now - 3 * 3600]
    rng.shuffle(idle)
    sessions = _live_sessions(timeline, rng, idle=idle, nick_of=nick_of, now=now)
    waiting = _waiting_customers(timeline, rng, idle=idle, now=now)

    events = sorted(timeline.events)
    _store_history(oa, events, openids=openids, bound=bound)
    _replay_reply_windows(oa, events)
    for openid, agent, created in sessions:
        oa.customers[openid].session_kf = agent
        oa.customers[openid].session_created = created
    for t, openid in sorted(waiting):
        oa.queue[openid] = t
    _add_materials(oa, now)
    return oa


# The demo's permanent materials: (name, colour) of each picture; voice and video
# names; news materials and published articles (title, digest).
DEMO_IMAGES = [
    ("春季新品海报.jpg", (196, 80, 90)),
    ("退换货流程.png", (70, 130, 180)),
    ("会员卡.jpg", (214, 160, 60)),
    ("门店地址.png", (80, 150, 110)),
    ("尺码表.jpg", (120, 100, 170)),
    ("包装示意.png", (150, 120, 90)),
]
DEMO_VOICES = ["欢迎语.amr", "营业时间.amr"]
DEMO_VIDEOS = ["开箱视频.mp4"]
DEMO_NEWS = [("新客专享：首单九折", "注册即领，全场通用"), ("春季上新指南", "十款新品一次看完")]
DEMO_PUBLISHED = [
    ("如何申请退换货", "七天无理由，三步搞定"),
    ("会员日活动规则", "每月 8 日，积分双倍"),
    ("青禾生活馆门店地址", "三家门店，营业时间一览"),
    ("物流查询说明", "下单后如何查看快递进度"),
    ("春季新品发布", "今年春天的十款新品"),
]


def _add_materials(oa: OfficialAccount, now: int) -> None:
    """Permanent images, voice and video, news materials and published articles
    (small generated files), so the library has something to pick."""
    store = oa.media
    for i, (name, color) in enumerate(DEMO_IMAGES):
        fmt = "PNG" if name.endswith(".png") else "JPEG"
        media_id = f"demo_image_{i + 1}"
        store.media[media_id] = Media(
            media_id, "image", image_bytes(color, size=(160, 120), fmt=fmt), now - 86400 * (30 - i), permanent=True, name=name
        )
    for i, name in enumerate(DEMO_VOICES):
        media_id = f"demo_voice_{i + 1}"
        store.media[media_id] = Media(media_id, "voice", amr_bytes(3 + i), now - 86400 * (20 - i), permanent=True, name=name)
    for i, name in enumerate(DEMO_VIDEOS):
        media_id = f"demo_video_{i + 1}"
        store.media[media_id] = Media(media_id, "video", mp4_bytes(), now - 86400 * 10, permanent=True, name=name)
    for i, (title, digest) in enumerate(DEMO_NEWS):
        media_id = f"demo_news_{i + 1}"
        thumb = f"demo_image_{i + 1}"
        article = Article(title=title, digest=digest, author="青禾", url=f"https://mp.weixin.qq.com/s/{media_id}", thumb_media_id=thumb)
        store.news[media_id] = NewsMaterial(media_id, [article], now - 86400 * (15 - i), now - 86400 * (15 - i))
    for i, (title, digest) in enumerate(DEMO_PUBLISHED):
        article_id = f"demo_article_{i + 1}"
        article = Article(
            title=title, digest=digest, author="青禾", url=f"https://mp.weixin.qq.com/s/{article_id}",
            thumb_media_id=f"demo_image_{i % len(DEMO_IMAGES) + 1}", content=f"<p>{digest}</p>",
        )
        when = now - 86400 * (12 - 2 * i)
        store.published[article_id] = NewsMaterial(article_id, [article], when, when)


def _add_agents(
    emu: Emulator, oa: OfficialAccount, rng: random.Random, now: int
) -> tuple[dict[str, str], list[str]]:
    """The kf accounts of DEMO_AGENTS in their states; returns each one's nickname and
    the bound ones."""
    nick_of: dict[str, str] = {}
    bound: list[str] = []
    for prefix, nickname, state, wx in DEMO_AGENTS:
        account = emu.create_account(oa, f"{prefix}@{DEMO_WECHAT_ID}", nickname)
        nick_of[account.kf_account] = nickname
        if state in ("online", "offline"):
            account.kf_wx = wx
            account.online = state == "online"
            account.headimg = DEMO_AVATAR
            account.headimg_version = 1
            bound.append(account.kf_account)
        elif state == "pending":
            account.invite_wx = wx
            account.invite_status = "waiting"
            account.invite_expire_time = now + 5 * 86400 - rng.randint(0, 86400)
        elif state == "rejected":
            account.invite_wx = wx
            account.invite_status = "rejected"
            account.invite_expire_time = now + 2 * 86400 - rng.randint(0, 86400)
    return nick_of, bound


def _add_customers(oa: OfficialAccount, rng: random.Random) -> list[str]:
    openids = [new_openid(rng) for _ in range(DEMO_CUSTOMERS)]
    for openid in openids:
        oa.customers[openid] = Customer(openid=openid)
    return openids


def _past_month(
    timeline: _Timeline,
    rng: random.Random,
    *,
    openids: list[str],
    bound: list[str],
    nick_of: dict[str, str],
    now: int,
) -> dict[str, int]:
    """DEMO_DAYS of closed chats, some with a follow-up the agent starts later; returns
    when each customer was last busy."""
    busy_until = dict.fromkeys(openids, 0)
    # Leave the last two hours to the live sessions and the queue built below.
    history_end = now - 2 * 3600
    for days_ago in range(DEMO_DAYS, 0, -1):
        day_start = now - days_ago * 86400
        for _ in range(rng.randint(30, 50)):
            # Daytime-heavy traffic: most chats between 09:00 and 22:00 of the day's span.
            t0 = (
                day_start + rng.randint(9 * 3600, 22 * 3600)
                if rng.random() < 0.85
                else day_start + rng.randint(0, 86399)
            )
            if t0 >= history_end:
                continue
            openid = rng.choice(openids)
            if busy_until[openid] > t0:
                continue
            agent = rng.choice(bound)
            lines = pick_template(rng)
            end = timeline.dialogue(
                rng, lines, t0=t0, agent=agent, openid=openid, nick=nick_of[agent], stop=history_end
            )
            end += rng.randint(30, 600)
            timeline.add(end, 1004, agent, openid)
            busy_until[openid] = end
            if rng.random() < 0.1:
                # A follow-up the agent starts later (within the 48 h window the chat opened).
                tf = end + rng.randint(3600, 20 * 3600)
                if tf < history_end:
                    english = any(lines is template for template in TEMPLATES_EN)
                    timeline.add(tf, 1002, agent, openid)
                    timeline.add(
                        tf + rng.randint(5, 30), 2002, agent, openid, pick_follow_up(rng, english)
                    )
                    timeline.add(tf + rng.randint(60, 300), 1004, agent, openid)
                    busy_until[openid] = tf + 300
    return busy_until


def _live_sessions(
    timeline: _Timeline, rng: random.Random, *, idle: list[str], nick_of: dict[str, str], now: int
) -> list[tuple[str, str, int]]:
    """DEMO_SESSIONS chats still open, with customers taken from ``idle``; returns
    (openid, agent, accepted at) for each."""
    sessions: list[tuple[str, str, int]] = []
    for prefix, n in DEMO_SESSIONS.items():
        agent = f"{prefix}@{DEMO_WECHAT_ID}"
        for _ in range(n):
            openid = idle.pop()
            t0 = now - rng.randint(300, 2400)
            lines = pick_template(rng)
            timeline.dialogue(
                rng, lines, t0=t0, agent=agent, openid=openid, nick=nick_of[agent], stop=now - 5
            )
            accepted = next(
                e[0] for e in reversed(timeline.events) if e[2] == 1001 and e[4] == openid
            )
            sessions.append((openid, agent, accepted))
    return sessions


def _waiting_customers(
    timeline: _Timeline, rng: random.Random, *, idle: list[str], now: int
) -> list[tuple[int, str]]:
    """DEMO_WAITING customers who wrote in the last 15 minutes and wait in the queue;
    returns (since, openid) for each."""
    waiting: list[tuple[int, str]] = []
    for _ in range(DEMO_WAITING):
        openid = idle.pop()
        t = now - rng.randint(20, 900)
        timeline.add(t, 2001, "", openid, render(pick_template(rng)[0][1], rng))
        timeline.add(t, 1000, "", openid)
        waiting.append((t, openid))
    return waiting


def _store_history(
    oa: OfficialAccount, events: list[Event], *, openids: list[str], bound: list[str]
) -> None:
    """The sorted events into the account's record store, in one columnar batch."""
    workers = ["", *bound]
    worker_pos = {w: i for i, w in enumerate(workers)}
    openid_pos = {o: i for i, o in enumerate(openids)}
    oa.records.extend(
        times=[e[0] for e in events],
        opercodes=[e[2] for e in events],
        worker_idx=[worker_pos[e[3]] for e in events],
        worker_names=workers,
        openid_idx=[openid_pos[e[4]] for e in events],
        openid_names=openids,
        texts=[e[5] for e in events],
    )


def _replay_reply_windows(oa: OfficialAccount, events: list[Event]) -> None:
    """Replay the history through the reply-window rules so budgets are consistent."""
    for t, _seq, opercode, _worker, openid, _text in events:
        customer = oa.customers[openid]
        if opercode in (2001, 2003):
            grant_message(customer, t)
            customer.last_interaction = t
            customer.latest_time = t
        elif opercode == 2002:
            spend_send(customer, t)

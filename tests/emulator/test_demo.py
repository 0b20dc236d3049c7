"""The demo official account: deterministic, believable, and consistent with the rules."""

from __future__ import annotations

import base64
import re
from collections import Counter

import requests

from kfadmin.emulator import (
    DEMO_APPID,
    DEMO_CALLBACK_TOKEN,
    DEMO_ENCODING_AES_KEY,
    DEMO_ORIGINAL_ID,
    DEMO_SECRET,
    DEMO_WECHAT_ID,
    Emulator,
)
from kfadmin.emulator.server import serve_in_thread

from .util import TIMEOUT, utf8_json

NOW = 1_760_000_000.0


def seeded(seed: int = 1) -> Emulator:
    emu = Emulator(clock=lambda: NOW)
    emu.seed_demo(seed=seed)
    return emu


def test_the_demo_constants_are_well_formed():
    assert re.fullmatch(r"wx[0-9a-f]{16}", DEMO_APPID)
    assert re.fullmatch(r"[0-9a-f]{32}", DEMO_SECRET)
    assert re.fullmatch(r"gh_[0-9a-f]{12}", DEMO_ORIGINAL_ID)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{5,19}", DEMO_WECHAT_ID)
    assert 3 <= len(DEMO_CALLBACK_TOKEN) <= 32
    assert len(DEMO_ENCODING_AES_KEY) == 43
    assert len(base64.b64decode(DEMO_ENCODING_AES_KEY + "=")) == 32


def test_the_same_seed_and_clock_give_the_same_demo():
    first, second = seeded(1), seeded(1)
    assert first.state() == second.state()
    assert first.records(limit=100_000) == second.records(limit=100_000)


def test_another_seed_gives_another_demo():
    assert seeded(1).records(limit=100_000) != seeded(2).records(limit=100_000)


def test_the_demo_has_the_described_shape():
    emu = seeded()
    oa = emu.state()["official_accounts"][0]
    assert (oa["appid"], oa["wechat_id"], oa["original_id"]) == (
        DEMO_APPID,
        DEMO_WECHAT_ID,
        DEMO_ORIGINAL_ID,
    )
    assert (oa["token"], oa["encoding_aes_key"]) == (DEMO_CALLBACK_TOKEN, DEMO_ENCODING_AES_KEY)
    accounts = oa["accounts"]
    assert len(accounts) == 12
    assert all(re.search(r"[\u4e00-\u9fff]", a["kf_nick"]) for a in accounts)
    online = [a for a in accounts if a["online"]]
    assert 4 <= len(online) <= 8
    assert sum(1 for a in accounts if "kf_wx" not in a) >= 4
    statuses = Counter(a.get("invite_status") for a in accounts)
    assert statuses["waiting"] == 1 and statuses["rejected"] == 1
    assert oa["customer_count"] == 200
    assert len(oa["queue"]) == 8
    assert len(oa["sessions"]) >= 5
    online_names = {a["kf_account"] for a in online}
    assert {s["kf_account"] for s in oa["sessions"]} <= online_names
    assert all(a["kf_headimgurl"] for a in accounts if "kf_wx" in a)


def test_the_demo_history_covers_30_days_of_chinese_and_english_dialogues():
    emu = seeded()
    store = emu.record_store()
    assert store.is_time_ordered()
    first, last = store.time_range()
    assert NOW - 31 * 86400 <= first <= NOW - 29 * 86400
    assert last <= NOW
    rows = emu.records(limit=100_000)["records"]
    assert len(rows) > 3000
    codes = Counter(r["opercode"] for r in rows)
    assert set(codes) == {1000, 1001, 1002, 1004, 2001, 2002, 2003}
    texts = [r["text"] for r in rows if r["opercode"] in (2001, 2002, 2003)]
    assert any(re.search(r"[\u4e00-\u9fff]", t) for t in texts)
    assert any(re.fullmatch(r"[ -~]+", t) and " " in t for t in texts)
    assert "[image]" in texts
    assert any("退款" in t for t in texts) and any("发货" in t for t in texts)


def test_demo_customers_are_consistent_with_the_reply_window_rules():
    emu = seeded()
    oa = emu.state()["official_accounts"][0]
    customers = {c["openid"]: c for c in oa["customers"]}
    for entry in oa["queue"]:
        customer = customers[entry["openid"]]
        assert customer["window_open"] and customer["remaining"] == 5
    for session in oa["sessions"]:
        assert customers[session["openid"]]["window_open"]
    assert all(0 <= c["remaining"] <= 5 for c in customers.values())


def test_the_demo_queue_is_in_arrival_order():
    emu = seeded()
    queue = emu.state()["official_accounts"][0]["queue"]
    assert [q["arrival"] for q in queue] == sorted(q["arrival"] for q in queue)


def test_the_demo_is_served_over_http_and_its_history_pages_through_24_hour_windows():
    emu = seeded()
    with serve_in_thread(emu) as handle:
        token = requests.get(
            f"{handle.base_url}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": DEMO_APPID, "secret": DEMO_SECRET},
            timeout=TIMEOUT,
        ).json()["access_token"]
        kf_list = requests.get(
            f"{handle.base_url}/cgi-bin/customservice/getkflist",
            params={"access_token": token},
            timeout=TIMEOUT,
        ).json()["kf_list"]
        assert len(kf_list) == 12
        avatar = requests.get(kf_list[0]["kf_headimgurl"], timeout=TIMEOUT)
        assert avatar.content.startswith(b"\xff\xd8\xff")
        total = 0
        end = int(NOW)
        with requests.Session() as session:
            for _ in range(32):
                start = end - 86400
                msgid = 1
                while True:
                    page = session.post(
                        f"{handle.base_url}/customservice/msgrecord/getmsglist",
                        params={"access_token": token},
                        data=utf8_json(
                            {"starttime": start, "endtime": end, "msgid": msgid, "number": 500}
                        ),
                        timeout=TIMEOUT,
                    ).json()
                    total += page["number"]
                    msgid = page["msgid"]
                    if page["number"] < 500:
                        break
                end = start - 1
    assert total == len(emu.record_store())

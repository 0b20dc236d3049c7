"""The demo's chattering customers: in-session lines are recorded for the serving
agent and never pushed, as WeChat does."""

from __future__ import annotations

from kfadmin.emulator import Emulator
from kfadmin.emulator.chatter import Chatter
from kfadmin.emulator.demo import DEMO_APPID


def test_customers_in_a_session_write_without_a_push():
    emulator = Emulator()
    emulator.seed_demo(seed=1)
    emulator.set_callback(appid=DEMO_APPID, url="http://127.0.0.1:9/wechat/callback/1/")
    chatter = Chatter(emulator, appid=DEMO_APPID, every=60, seed=3)
    before = emulator.state(appid=DEMO_APPID, customers=False)["official_accounts"][0]["record_count"]

    wrote = [chatter.turn() for _ in range(20)]

    in_session = [w for w in wrote if w["kf_account"]]
    newcomers = [w for w in wrote if not w["kf_account"]]
    assert len(in_session) >= 12 and all(w["msgid"] is None for w in in_session)
    assert all(w["queued"] and w["msgid"] for w in newcomers)
    after = emulator.state(appid=DEMO_APPID, customers=False)["official_accounts"][0]["record_count"]
    assert after - before == len(in_session) + 2 * len(newcomers)  # 2003; or 2001 and 1000


def test_the_demo_does_not_push_in_session_messages_by_default():
    emulator = Emulator()
    emulator.seed_demo(seed=1)
    assert emulator.state(appid=DEMO_APPID, customers=False)["official_accounts"][0]["push_session_messages"] is False

"""Benchmark: what the live tail costs per account, and how soon a message is stored.

    scripts/uv run python bench/tail.py                  # 0, 10 and 200 open sessions
    scripts/uv run python bench/tail.py --sessions 0 10 --seconds 30

Against the emulator (in this process, over HTTP) and PostgreSQL (its own database,
`kfadmin_bench_tail` by default, dropped and recreated). For each number of open
sessions it runs, in real time, what beat and the worker do every SYNC_TAIL_SECONDS
for one account: the fan-out's query (`tail_accounts_due`) and, when the account is
due, the tail task's body (`sync_tail_task`: claim, getmsglist, store, release),
while the customers write: each open session's customer twice a minute, in a session
(WeChat pushes none of it). Printed per minute and account: WeChat calls, database
queries and rows they returned or changed, records stored, and the tail's time; and
two ratios measured in the same run: 200 sessions against 10 (how the cost grows),
and the tail's time against a bare getmsglist call of the same window (the WeChat
round trip the tail cannot avoid).

Latency: a customer writes through the emulator's control API (HTTP) at a random
moment while the tail runs every SYNC_TAIL_SECONDS in a thread; the time until the
record is in the archive is measured, and set against the interval (the bound is
one interval plus one run).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

APPID = "wxbenchtail000001"
SECRET = "bench-secret-0123456789abcdef0123"
WECHAT_ID = "bench_oa"
MSGLIST = "/customservice/msgrecord/getmsglist"


def _setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kfadmin.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _recreate_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class QueryMeter:
    """Counts the queries Django runs and the rows they returned or changed."""

    def __init__(self) -> None:
        self.queries = 0
        self.rows = 0

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        self.queries += 1
        cursor = context.get("cursor")
        count = getattr(cursor, "rowcount", -1) if cursor is not None else -1
        if count and count > 0:
            self.rows += count
        return result


def _scenario(emu, account, sessions: int, seconds: float, interval: float, rng: random.Random) -> dict:
    from django.db import connection

    from accounts.models import Agent
    from messaging.models import MessageRecord
    from messaging.selectors import tail_accounts_due
    from messaging.tasks import sync_tail_task
    from sessions_app.models import Customer, KfSession

    # A fresh set of open sessions, in the emulator and in kfadmin's copy.
    KfSession.objects.filter(official_account=account).update(state=KfSession.State.CLOSED)
    openids = []
    agents = [a["kf_account"] for a in emu.state(appid=APPID, customers=False)["official_accounts"][0]["accounts"]]
    for n in range(sessions):
        kf = agents[n % len(agents)]
        openid = emu.customer_writes(appid=APPID, text=f"开始 {n}")["openid"]
        emu.agent_accept(appid=APPID, kf_account=kf, openid=openid)
        agent, _ = Agent.objects.get_or_create(official_account=account, kf_account=kf)
        customer, _ = Customer.objects.get_or_create(official_account=account, openid=openid)
        KfSession.objects.create(official_account=account, customer=customer, agent=agent, state=KfSession.State.OPEN)
        openids.append(openid)
    # Start from a stored archive, as a running system would.
    if sessions:
        sync_tail_task(account.pk)
    emu.clear_calls()
    meter = QueryMeter()
    stored_before = MessageRecord.objects.filter(official_account=account).count()
    per_tick = 2 * sessions * interval / 60  # two messages a minute per session
    owed = 0.0
    runs = 0
    busy = 0.0
    began = time.monotonic()
    tick = began
    with connection.execute_wrapper(meter):
        while time.monotonic() - began < seconds:
            owed += per_tick
            while owed >= 1:
                emu.customer_writes(appid=APPID, openid=rng.choice(openids), text=f"消息 {rng.randrange(10**6)}")
                owed -= 1
            t0 = time.perf_counter()
            for account_id in tail_accounts_due():
                sync_tail_task(account_id)
                runs += 1
            busy += time.perf_counter() - t0
            tick += interval
            time.sleep(max(0.0, tick - time.monotonic()))
    minutes = (time.monotonic() - began) / 60
    stored = MessageRecord.objects.filter(official_account=account).count() - stored_before
    calls = emu.calls()
    return {
        "sessions": sessions,
        "runs": runs / minutes,
        "wechat_calls": len(calls) / minutes,
        "msglist_calls": sum(1 for c in calls if c.path == MSGLIST) / minutes,
        "queries": meter.queries / minutes,
        "rows": meter.rows / minutes,
        "stored": stored / minutes,
        "busy_ms": 1000 * busy / minutes,
        "ms_per_run": 1000 * busy / runs if runs else 0.0,
    }


def _bare_call_ms(account, repeats: int = 20) -> float:
    """A getmsglist call of the tail's own window, parsed, nothing stored."""
    import math

    from django.utils import timezone

    from accounts.clients import wechat_client_for
    from messaging.sync import tail_window

    client = wechat_client_for(account)
    start, end = tail_window(account_id=account.pk, now=timezone.now())
    took = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        list(client.iter_msg_record_pages(math.floor(start.timestamp()), math.floor(end.timestamp())))
        took.append(time.perf_counter() - t0)
    return 1000 * statistics.median(took)


def _latency(emu, base_url: str, account, samples: int, interval: float, rng: random.Random) -> list[float]:
    import requests
    from django.db import connections

    from messaging.models import MessageRecord
    from messaging.selectors import tail_accounts_due
    from messaging.tasks import sync_tail_task

    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(interval):
                for account_id in tail_accounts_due():
                    sync_tail_task(account_id)
        finally:
            connections.close_all()

    ticker = threading.Thread(target=beat, daemon=True)
    ticker.start()
    openid = emu.state(appid=APPID, customers=False)["official_accounts"][0]["sessions"][0]["openid"]
    waits = []
    with requests.Session() as http:
        for n in range(samples):
            time.sleep(rng.uniform(0, interval))
            text = f"latency probe {n} {rng.randrange(10**9)}"
            t0 = time.monotonic()
            http.post(f"{base_url}/__emulator__/customer_writes", json={"openid": openid, "text": text}, timeout=10)
            while not MessageRecord.objects.filter(official_account=account, openid=openid, text=text).exists():
                time.sleep(0.05)
            waits.append(time.monotonic() - t0)
    stop.set()
    ticker.join(timeout=30)
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[0, 10, 200])
    parser.add_argument("--seconds", type=float, default=60, help="real time each case runs (default 60)")
    parser.add_argument("--samples", type=int, default=10, help="latency samples (default 10)")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="kfadmin_bench_tail")
    args = parser.parse_args()

    _recreate_database(args.server, args.database)
    _setup(f"{args.server}/{args.database}")
    from django.conf import settings
    from django.core.management import call_command

    from accounts.models import OfficialAccount
    from kfadmin.emulator import Emulator
    from kfadmin.emulator.server import serve_in_thread

    call_command("migrate", verbosity=0)
    interval = float(settings.SYNC_TAIL_SECONDS)
    emu = Emulator()
    emu.add_official_account(appid=APPID, secret=SECRET, wechat_id=WECHAT_ID)
    for n in range(20):
        emu.add_agent(appid=APPID, prefix=f"kf{n:02d}", nickname=f"客服{n:02d}")
    handle = serve_in_thread(emu, host="127.0.0.1", port=0)
    account = OfficialAccount.objects.create(
        name="bench", appid=APPID, secret=SECRET, wechat_id=WECHAT_ID, api_base_url=handle.base_url
    )
    rng = random.Random(11)
    try:
        print(f"Live tail every {interval:.0f} s, {args.seconds:.0f} s of real time per case, one account.")
        print(f"{'sessions':>8} {'runs/min':>9} {'WeChat calls/min':>17} {'queries/min':>12} {'rows/min':>9} "
              f"{'stored/min':>11} {'tail ms/min':>12} {'ms/run':>7}")
        results = {}
        for sessions in args.sessions:
            r = _scenario(emu, account, sessions, args.seconds, interval, rng)
            results[sessions] = r
            print(f"{sessions:>8} {r['runs']:>9.1f} {r['wechat_calls']:>17.1f} {r['queries']:>12.1f} "
                  f"{r['rows']:>9.1f} {r['stored']:>11.1f} {r['busy_ms']:>12.1f} {r['ms_per_run']:>7.1f}")
        if 10 in results and 200 in results and results[10]["queries"]:
            a, b = results[10], results[200]
            print(f"200 vs 10 sessions: queries ×{b['queries'] / a['queries']:.2f}, rows ×{b['rows'] / max(a['rows'], 1):.2f}, "
                  f"WeChat calls ×{b['wechat_calls'] / max(a['wechat_calls'], 1):.2f}, "
                  f"time per run ×{b['ms_per_run'] / max(a['ms_per_run'], 1e-9):.2f} "
                  f"(messages ×{b['stored'] / max(a['stored'], 1):.1f})")
        top = max(s for s in results if s > 0) if any(s > 0 for s in results) else None
        if top is not None:
            bare = _bare_call_ms(account)
            print(f"A tail run with {top} sessions: {results[top]['ms_per_run']:.1f} ms; a bare getmsglist call of its "
                  f"window: {bare:.1f} ms (×{results[top]['ms_per_run'] / bare:.2f})")
            waits = _latency(emu, handle.base_url, account, args.samples, interval, rng)
            print(f"Message to stored, {len(waits)} samples: median {statistics.median(waits):.2f} s, "
                  f"max {max(waits):.2f} s; interval {interval:.0f} s (median/interval "
                  f"{statistics.median(waits) / interval:.2f}, max/interval {max(waits) / interval:.2f})")
    finally:
        handle.shutdown()
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    main()

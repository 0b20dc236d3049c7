"""Benchmark: the reports page on a large archive, against the same figures computed
straight from the archive, and the history sync's storing path with the reports'
rollups on and off.

    scripts/uv run python bench/reports.py                         # 10,000,000 records, 200 agents
    scripts/uv run python bench/reports.py --rows 1000000          # smaller
    scripts/uv run python bench/reports.py --reuse                 # measure the kept data again

1. Loads the archive with `bench/search.py`'s generator (`archive_rows`: a year up to
   now, Zipf customers and agents, 90 % in the first account) with 200 agents and
   200,000 customers, by binary COPY with the indexes rebuilt after; then derives the
   rollups with `reports_rebuild`'s service (timed).
2. The reports page (`GET /reports/`, a supervisor, Django's test client in process,
   the current and the previous period, rendered with its five SVG charts) for the
   last 30 days and the last 365 days: p50 / p95 over `--runs` requests. Targets:
   30 days p95 ≤ 100 ms, 1 year p95 ≤ 300 ms.
3. The baseline, in the same run: the same figures straight from the archive — every
   record of the customers active in the period from their last close before it,
   through the same derivation (`reports.facts`), then counted and ranked in Python —
   and a check that both give identical per-agent and queue figures.
4. The history sync's storing path (`messaging.sync._store_page`, the same as a sync
   or the live tail runs: COPY into the archive, reply windows, rollups) on pages of
   10,000 new records appended after the archive's end, alternately with the rollups
   on and off; the ratio of records per second. Target ≥ 0.9. With the rollups on, the
   storing path only notes what changed; the deferred catch-up (`rollups_catch_up`, what
   the sync queue runs) is then timed in process too, and storing + catch-up reported. It measures the
   database side only (the sync fetches and parses the next page meanwhile), so it is
   the harshest form of the ratio.

Uses its own database (`kfadmin_bench_reports` by default), kept unless `--drop`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from search import (  # noqa: E402 - the bench folder is on the path now
    TABLE,
    archive_rows,
    copy_into_archive,
    pct,
    random_openid,
    timed,
)

APPIDS = ("wxbenchreports0001", "wxbenchreports0002")
WECHAT_ID = "bench_oa"


def people(seed: int, agents: int) -> tuple[list[str], list[str]]:
    rng = random.Random(f"{seed}-customers")
    openids = [random_openid(rng) for _ in range(200_000)]
    workers = [f"kf{n:03d}@{WECHAT_ID}" for n in range(1, agents + 1)]
    return openids, workers


def load(args: argparse.Namespace) -> None:
    from django.db import connection

    from accounts.models import Agent, OfficialAccount

    main = OfficialAccount.objects.create(name="bench", appid=APPIDS[0], secret="s", wechat_id=WECHAT_ID)
    other = OfficialAccount.objects.create(name="other", appid=APPIDS[1], secret="s", wechat_id="other_oa")
    openids, workers = people(args.seed, args.agents)
    Agent.objects.bulk_create(
        [Agent(official_account=main, kf_account=w, kf_nick=f"客服{n}") for n, w in enumerate(workers, 1)]
    )
    connection.ensure_connection()
    raw = connection.connection
    raw.autocommit = True
    rows = archive_rows(
        rows=args.rows, seed=args.seed, account_ids=(main.pk, other.pk), openids=openids, workers=workers,
        end=int(time.time()),
    )
    copy_into_archive(raw, rows, args.rows)
    with raw.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {TABLE}")


def rebuild(account_id: int) -> None:
    from django.db import connection

    from reports.services import rollups_rebuild

    began = time.perf_counter()
    customers, facts = rollups_rebuild(account_id=account_id)
    took = time.perf_counter() - began
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    print(f"rollups rebuilt: {customers:,} customers, {facts:,} facts in {took:.0f} s", flush=True)


# ------------------------------------------------------------------ the baseline


def archive_figures(account, period):
    """The per-agent and queue figures straight from the archive."""
    from django.db.models import Count

    from messaging.models import MessageRecord
    from reports import facts as F
    from reports.selectors import AgentFigures, stat_of
    from reports.services import _anchors, _records_after

    start, end = period.start, period.end
    active = list(
        MessageRecord.objects.filter(official_account=account, time__gte=start, time__lt=end)
        .order_by().values_list("openid", flat=True).distinct()
    )
    agents: dict[str, AgentFigures] = defaultdict(lambda: AgentFigures(worker="", name=""))
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    served: dict[str, set[str]] = defaultdict(set)
    queue_waits: list[float] = []
    left = 0
    for chunk_start in range(0, len(active), 5000):
        chunk = active[chunk_start : chunk_start + 5000]
        anchors = _anchors(account.pk, {openid: start for openid in chunk})
        for openid, found in F.facts_by_customer(_records_after(account.pk, anchors)):
            for s in found.sessions:
                a = agents[s.worker]
                if start <= s.started_at < end:
                    a.accepted += 1
                    if s.messages_out:
                        served[s.worker].add(openid)
                    if s.ended_at and s.end_code in (F.CLOSED, F.TRANSFERRED):
                        values[s.worker]["duration"].append((s.ended_at - s.started_at).total_seconds())
                    if s.ended_at and s.asked_at and not s.first_reply_at:
                        a.unanswered += 1
                if s.ended_at and start <= s.ended_at < end:
                    a.closed += s.end_code == F.CLOSED
                    a.transferred += s.end_code == F.TRANSFERRED
            for r in found.responses:
                if start <= r.asked_at < end:
                    values[r.worker]["first" if r.first else "reply"].append(r.seconds)
            for q in found.queue:
                if start <= q.queued_at < end:
                    if q.outcome == "served":
                        queue_waits.append((q.ended_at - q.queued_at).total_seconds())
                    left += q.outcome == "left"
    sent = (
        MessageRecord.objects.filter(official_account=account, time__gte=start, time__lt=end, opercode=F.AGENT)
        .values("worker").annotate(n=Count("id")).order_by()
    )
    for row in sent:
        agents[row["worker"]].sent = row["n"]
    for worker, a in agents.items():
        a.worker = worker
        a.customers = len(served[worker])
        a.first_response = stat_of(values[worker]["first"])
        a.reply = stat_of(values[worker]["reply"])
        a.duration = stat_of(values[worker]["duration"])
    return agents, stat_of(queue_waits), left


def compare(report, baseline) -> str:
    agents, queue, left = baseline
    keys = ("accepted", "closed", "transferred", "customers", "sent", "first_response", "reply", "duration", "unanswered")
    differ = [
        a.worker for a in report.agents
        if any(getattr(a, k) != getattr(agents[a.worker], k) for k in keys) and (a.accepted or a.sent or a.closed)
    ]
    same_queue = report.team.queue == queue and report.team.queue_left == left
    return "identical" if not differ and same_queue else f"DIFFER: agents {differ[:5]} queue {same_queue}"


# ------------------------------------------------------------------ the sync


def sync_pages(account, *, pages: int, page_size: int, seed: int, agents: int, start: int):
    """Pages of new records after the archive's end (same density and mix)."""
    openids, workers = people(seed, agents)
    rows = archive_rows(
        rows=10_000_000, seed=seed + 1, account_ids=(account.pk, account.pk + 10**6),
        openids=openids, workers=workers, end=start + 365 * 86400,
    )
    mine = (r for r in rows if r[0] == account.pk)
    for _ in range(pages):
        page = []
        for r in itertools.islice(mine, page_size):
            _, at, worker, openid, opercode, text, digest, seq, _, _ = r
            page.append((int(at.timestamp()), worker, openid, opercode, text, digest, seq))
        yield page


def measure_sync(account, args) -> None:
    from django.db import connection

    from messaging import archive, sync
    from reports import services

    listeners = list(archive._listeners)
    # The catch-up is timed here, in process, rather than handed to a worker.
    services.rollups_enqueue = lambda *, account_id: True
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT extract(epoch FROM max("time"))::bigint FROM {TABLE}')
        end = cursor.fetchone()[0] + 60
    stream = sync_pages(account, pages=2 * args.sync_rounds * args.sync_pages, page_size=10_000,
                        seed=args.seed, agents=args.agents, start=end)
    rates = {"off": [], "on": [], "total": []}
    for n in range(2 * args.sync_rounds):
        mode = "off" if n % 2 == 0 else "on"
        archive._listeners[:] = listeners if mode == "on" else []
        pages = [next(stream) for _ in range(args.sync_pages)]
        records = sum(len(p) for p in pages)
        began = time.perf_counter()
        for page in pages:
            sync._store_page(account, page)
        stored = time.perf_counter() - began
        rates[mode].append(records / stored)
        line = f"  store {args.sync_pages} pages, rollups {mode:3}: {records / stored:,.0f} records/s"
        if mode == "on":
            began = time.perf_counter()
            customers = services.rollups_catch_up(account_id=account.pk)
            derived = time.perf_counter() - began
            rates["total"].append(records / (stored + derived))
            line += (f" | catch-up: {customers:,} customers in {derived:.1f} s; storing + catch-up "
                     f"{records / (stored + derived):,.0f} records/s")
        print(line, flush=True)
    archive._listeners[:] = listeners
    on, off = sum(rates["on"]) / len(rates["on"]), sum(rates["off"]) / len(rates["off"])
    total = sum(rates["total"]) / len(rates["total"])
    print(f"sync storing path: rollups off {off:,.0f} records/s, on {on:,.0f} records/s, "
          f"ratio {on / off:.2f} (target >= 0.9) {'PASS' if on / off >= 0.9 else 'FAIL'}; "
          f"with the deferred catch-up counted too {total:,.0f} records/s, ratio {total / off:.2f}", flush=True)


# ------------------------------------------------------------------ the page


def measure_pages(account, args) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import Membership
    from reports.selectors import Period, report_get

    user, _ = get_user_model().objects.get_or_create(username="bench_supervisor")
    Membership.objects.get_or_create(user=user, official_account=account, defaults={"role": "supervisor"})
    client = Client()
    client.force_login(user)
    today = datetime.now(tz=account.zone).date()
    for days, target, runs in ((30, 100, args.runs), (365, 300, max(5, args.runs // 2))):
        period = Period(today - timedelta(days=days - 1), today, account.zone)
        query = {"first": period.first.isoformat(), "last": period.last.isoformat()}

        def page(query=query):
            response = client.get("/reports/", query)
            assert response.status_code == 200 and response.content.count(b"<svg") >= 4

        page()
        page()
        times = timed(page, runs)
        began = time.perf_counter()
        baseline = archive_figures(account, period)
        direct = (time.perf_counter() - began) * 1000
        check = compare(report_get(account=account, period=period), baseline)
        p95 = pct(times, 0.95)
        print(
            f"{days:3} days: page p50 {pct(times, 0.5):6.1f} ms  p95 {p95:6.1f} ms (target {target} ms) "
            f"{'PASS' if p95 <= target else 'FAIL'} | straight from the archive {direct:,.0f} ms "
            f"(x{direct / pct(times, 0.5):,.0f}) | figures {check}",
            flush=True,
        )


def profile_pages(account, args) -> None:
    """Where one page's time goes: its SQL (statements and time) and a cProfile of
    the whole request, for 30 and 365 days."""
    import cProfile
    import pstats

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import Membership
    from reports.selectors import Period

    user, _ = get_user_model().objects.get_or_create(username="bench_supervisor")
    Membership.objects.get_or_create(user=user, official_account=account, defaults={"role": "supervisor"})
    client = Client()
    client.force_login(user)
    today = datetime.now(tz=account.zone).date()
    for days in (30, 365):
        period = Period(today - timedelta(days=days - 1), today, account.zone)
        query = {"first": period.first.isoformat(), "last": period.last.isoformat()}
        client.get("/reports/", query)
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            client.get("/reports/", query)
            took = time.perf_counter() - began
        sql = sorted(((float(q["time"]), q["sql"]) for q in queries.captured_queries), reverse=True)
        print(f"{days} days: {took * 1000:,.0f} ms, {len(sql)} statements taking {sum(t for t, _ in sql) * 1000:,.0f} ms; "
              "the slowest:", flush=True)
        for seconds, statement in sql[:6]:
            print(f"  {seconds * 1000:7.1f} ms  {statement[:160]}")
        profiler = cProfile.Profile()
        profiler.runcall(client.get, "/reports/", query)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def compare_sums(account, args) -> None:
    """The page's message sums read as before (every agent's hours: per agent and per
    hour, two passes over MessageHour) and as now (MessageDay for the whole UTC days
    plus the edge hours, and TeamHour), alternately in the same run: the medians and
    their ratio, and a check that both give the same figures."""
    import statistics

    from django.db.models import Sum

    from reports.models import MessageHour, TeamHour
    from reports.selectors import Period, _sent_by_worker

    today = datetime.now(tz=account.zone).date()
    for days in (30, 365):
        period = Period(today - timedelta(days=days - 1), today, account.zone)
        start, end = period.start, period.end

        def before(start=start, end=end):
            hours = MessageHour.objects.filter(official_account=account, hour__gte=start, hour__lt=end)
            sent = {
                r["worker"]: r["out"]
                for r in hours.exclude(worker="").values("worker").annotate(out=Sum("messages_out")).order_by()
                if r["out"]
            }
            series = {
                r["hour"]: (r["i"], r["o"])
                for r in hours.values("hour").annotate(i=Sum("messages_in"), o=Sum("messages_out")).order_by("hour")
            }
            return sent, series

        def after(start=start, end=end):
            sent = {w: n for w, n in _sent_by_worker(account, start, end).items() if n}
            series = {
                h: (i, o)
                for h, i, o in TeamHour.objects.filter(official_account=account, hour__gte=start, hour__lt=end)
                .values_list("hour", "messages_in", "messages_out")
            }
            return sent, series

        same = before() == after()
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.runs):
            for name, read in (("before", before), ("after", after)):
                began = time.perf_counter()
                read()
                times[name].append((time.perf_counter() - began) * 1000)
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"{days:3} days: message sums before {b:,.1f} ms, after {a:,.1f} ms (medians of {args.runs}): "
              f"x{b / a:,.1f} | figures {'identical' if same else 'DIFFER'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20, help="timed page loads per period")
    parser.add_argument("--sync-rounds", type=int, default=3, help="off/on pairs of the storing path")
    parser.add_argument("--sync-pages", type=int, default=5, help="pages of 10,000 records per round")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--database", default="kfadmin_bench_reports")
    parser.add_argument("--reuse", action="store_true", help="reuse the database of an earlier run")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    parser.add_argument("--rebuild", action="store_true", help="with --reuse: derive the rollups again")
    parser.add_argument("--skip-sync", action="store_true", help="skip the storing path's on/off ratio")
    parser.add_argument("--skip-pages", action="store_true", help="skip the pages and the baseline")
    parser.add_argument("--profile", action="store_true", help="only profile one page of 30 and of 365 days")
    parser.add_argument("--compare-sums", action="store_true",
                        help="only time the message sums read from the hours (before) and the days (now)")
    args = parser.parse_args()
    if not args.database.startswith("kfadmin_bench"):
        parser.error("the database name must start with kfadmin_bench (it is dropped)")

    import psycopg

    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kfadmin.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if not args.reuse:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{args.database}"')
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import OfficialAccount

    call_command("migrate", verbosity=0)
    if args.reuse:
        # Tables a migration just filled have no statistics until autovacuum passes.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) reports_messageday, reports_teamhour")
    if not args.reuse:
        print(f"loading {args.rows:,} records, {args.agents} agents ...", flush=True)
        began = time.perf_counter()
        load(args)
        print(f"loaded in {time.perf_counter() - began:.0f} s", flush=True)
    if not args.reuse or args.rebuild:
        rebuild(OfficialAccount.objects.get(appid=APPIDS[0]).pk)
    account = OfficialAccount.objects.get(appid=APPIDS[0])
    try:
        if args.profile:
            profile_pages(account, args)
            return
        if args.compare_sums:
            compare_sums(account, args)
            return
        if not args.skip_pages:
            measure_pages(account, args)
        if not args.skip_sync:
            measure_sync(account, args)
    finally:
        connection.close()
        if args.drop:
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


if __name__ == "__main__":
    main()

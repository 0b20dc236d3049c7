"""Large teams: what the pages that list agents cost at 200 and at 1000 agents.

    scripts/uv run python -m bench.teams [--agents 200 1000] [--runs 30] [--drop]

Builds `kfadmin_bench_teams` (dropped and recreated) with one official account, for each
team size in turn: that many listed agents (three in four online, one in ten not bound
to WeChat), a user with the agent role for each and one supervisor, one waiting
customer. Then, in process (Django's test client, production settings, no fragment
cache), the supervisor asks for every page or fragment that lists agents:

- floor: the empty action panel `/queue/panel/` (htmx), an authenticated fragment that
  reads nothing: the cost of a request itself, measured first and last;
- the agents table as its 15-second poll asks for it, the whole agents page, the users
  page, the assign panel (its agent field), the history page (its agent filter), the
  inbox as a supervisor's poll asks for it (its agent picker), a conversation (the
  composer's "send as"), and, where it exists, the agent field's suggestions.

Each is asked `--runs` times after 3 warm-ups; printed: median and p95 ms, the median
as a multiple of the floor's (the machine's speed cancels out), the response's size and
its SQL queries. The script runs on any checkout of kfadmin with the same models, so the
tree before a change can be measured with the same file (docs/performance.md says how).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass

BENCH_SECRET_KEY = "kfadmin-bench-teams-not-a-production-key-0123456789abcdef"
BENCH_FIELD_KEY = "kfadmin-bench-teams-field-key-not-for-production"
WECHAT_ID = "bench_team"


@dataclass
class Endpoint:
    name: str
    url: str
    headers: dict[str, str]


@dataclass
class Measured:
    endpoint: Endpoint
    times_ms: list[float]
    size: int
    queries: int
    status: int

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def build(count: int):
    """The account, `count` agents with an agent-role user each, a supervisor and one
    waiting customer (everything of an earlier size is deleted first)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from accounts.models import Agent, Membership, OfficialAccount
    from sessions_app.models import KfSession
    from sessions_app.services import Touch, customer_touch

    User = get_user_model()
    OfficialAccount.objects.all().delete()
    User.objects.all().delete()
    now = timezone.now()
    account = OfficialAccount.objects.create(
        name="bench team", appid="wxbenchteams00001", secret="bench-secret-0123456789abcdef0123", wechat_id=WECHAT_ID,
    )
    agents = Agent.objects.bulk_create(
        Agent(
            official_account=account, kf_account=f"kf{n:04d}@{WECHAT_ID}", kf_id=str(1000 + n), kf_nick=f"客服{n:04d}",
            kf_wx="" if n % 10 == 0 else f"wx_worker{n}", online_status=0 if n % 4 == 0 else 1,
            accepted_case=n % 7, last_listed_at=now, last_online_at=now,
        )
        for n in range(count)
    )
    password = make_password(None)
    users = User.objects.bulk_create(
        [User(username="bench_boss", password=password)]
        + [User(username=f"bench_agent{n:04d}", password=password) for n in range(count)]
    )
    Membership.objects.bulk_create(
        [Membership(user=users[0], official_account=account, role=Membership.Role.SUPERVISOR)]
        + [Membership(user=u, official_account=account, role=Membership.Role.AGENT, agent=a)
           for u, a in zip(users[1:], agents, strict=True)]
    )
    customer = customer_touch(account, "o_bench_waiting_customer", now, Touch.MESSAGE)
    KfSession.objects.create(
        official_account=account, customer=customer, state=KfSession.State.WAITING, created_at=now, latest_time=now
    )
    return users[0], customer


def endpoints(customer) -> list[Endpoint]:
    from django.urls import NoReverseMatch, reverse

    def htmx(target: str) -> dict[str, str]:
        return {"HX-Request": "true", "HX-Target": target}

    plan = [
        Endpoint("agents table (its poll)", reverse("accounts:agents"), htmx("agent-table")),
        Endpoint("agents page", reverse("accounts:agents"), {}),
        Endpoint("users page", reverse("accounts:users"), {}),
        Endpoint("assign panel", reverse("sessions_app:assign", args=[customer.openid]), htmx("action-panel")),
        Endpoint("history page", reverse("messaging:history"), {}),
        Endpoint("inbox (its poll)", reverse("messaging:inbox"), htmx("inbox")),
        Endpoint("conversation page", reverse("messaging:conversation", args=[customer.openid]), {}),
    ]
    try:
        options = reverse("accounts:agent_options")
    except NoReverseMatch:
        pass  # the tree before the search-as-you-type field
    else:
        plan.append(Endpoint("agent suggestions", f"{options}?scope=bound&field=agent&agent=kf01", htmx("")))
    return plan


FLOOR_NAME = "floor /queue/panel/"


def measure(client, endpoint: Endpoint, runs: int) -> Measured:
    from django.db import connection

    for _ in range(3):
        client.get(endpoint.url, headers=endpoint.headers)
    queries: list[str] = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(endpoint.url, headers=endpoint.headers)
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        client.get(endpoint.url, headers=endpoint.headers)
        times.append((time.perf_counter() - began) * 1000)
    return Measured(endpoint, times, len(response.content), len(queries), response.status_code)


def run(count: int, runs: int) -> list[tuple[Measured, float]]:
    from django.test import Client
    from django.urls import reverse

    boss, customer = build(count)
    client = Client()
    client.force_login(boss)
    floor = Endpoint(FLOOR_NAME, reverse("sessions_app:panel_empty"), {"HX-Request": "true", "HX-Target": "action-panel"})
    first = measure(client, floor, runs)
    measured = [measure(client, e, runs) for e in endpoints(customer)]
    last = measure(client, floor, runs)
    floor_ms = (first.median + last.median) / 2
    print(f"\n{count} agents; floor {floor_ms:.1f} ms (median of {runs}; first {first.median:.1f}, last {last.median:.1f})")
    print(f"  {'':28} {'median':>8} {'p95':>8} {'× floor':>8} {'bytes':>10} {'queries':>8}")
    rows = []
    for m in [first, *measured]:
        ratio = m.median / floor_ms
        status = "" if m.status == 200 else f"  (HTTP {m.status})"
        print(f"  {m.endpoint.name:28} {m.median:8.1f} {m.p95:8.1f} {ratio:8.1f} {m.size:10,} {m.queries:8}{status}")
        rows.append((m, ratio))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[200, 1000], help="team sizes (default 200 1000)")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per endpoint")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--database", default="kfadmin_bench_teams")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    args = parser.parse_args()
    if not args.database.startswith("kfadmin_bench"):
        parser.error("the database name must start with kfadmin_bench (it is dropped)")

    import psycopg

    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ["SECRET_KEY"] = BENCH_SECRET_KEY
    os.environ["FIELD_ENCRYPTION_KEY"] = BENCH_FIELD_KEY
    os.environ["DEBUG"] = "false"
    os.environ["FRAGMENT_CACHE_SECONDS"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kfadmin.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    import django

    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", verbosity=0)
        print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
        for count in args.agents:
            run(count, args.runs)
        print(f"\nload average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    finally:
        connection.close()
        if args.drop:
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    sys.exit(0)


if __name__ == "__main__":
    main()

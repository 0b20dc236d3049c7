"""Benchmark: the fragments the dashboard polls, and the history page, under concurrent load.

    scripts/uv run python bench/dashboard.py                          # 10,000,000 records
    scripts/uv run python bench/dashboard.py --records 1000000        # quicker (about 3 minutes)
    scripts/uv run python bench/dashboard.py --reuse                  # measure the data of a run before
    scripts/uv run python bench/dashboard.py --reuse --queries        # and print each endpoint's SQL
    scripts/uv run python bench/dashboard.py --reuse --repeat 3       # three rounds (the machine is noisy)

Builds a production-sized official account in its own database (`kfadmin_bench_dashboard`,
dropped and recreated unless `--reuse`): 200 agents (three in four online), 200,000
customers, 2,000 open sessions, 100 waiting customers, a closed-session history
(records / 10) and the archive (10,000,000 records over a year, binary COPY into the
real schema with its indexes dropped during the load and rebuilt after, texts from
bench/search.py's vocabulary), one supervisor and one dashboard user per agent; then
VACUUM ANALYZE. Building 10,000,000 records takes about 8 minutes here (the GIN bigram
index alone about 4.5); measuring takes about 5 minutes a round.

It starts `gunicorn kfadmin.wsgi -w 2` on a free loopback port with production-like
settings (DEBUG off, a SECRET_KEY, ALLOWED_HOSTS=127.0.0.1, CACHE_URL pointing at Redis
database 14, emptied first, so the workers share sessions and cached fragments), logs
each user in through the real login form (CSRF token and all), and measures each
endpoint with N concurrent clients for a bounded time and number of requests. The
clients are threads in this process, each sending `GET`s one after the other on plain
sockets, one connection per request (gunicorn's sync workers close every connection
anyway); no tool outside the project is needed. They share the machine with gunicorn,
PostgreSQL and Redis: the `gen` column says how much of it they used.

- trivial view: `/healthz`, measured first and last, and for 4 s just before every
  other endpoint: each endpoint's ratio is against that neighbour, since the shared
  machine's speed drifts by a quarter within a run
- the floor: the empty action panel `/queue/panel/` (htmx), an account fragment that
  reads nothing, i.e. what every polled fragment pays before its own work (session,
  user, account and role); a reference, no target
- the URLs the pages poll (`hx-trigger="every …"`), with the headers htmx 2 sends:
  overview `/` (#overview, 5 s), the queue board `/queue/` (#queue-waiting and
  #open-sessions, 5 s) as the supervisor, folded and with one agent picked
  (`?agent=`), #open-sessions as one agent (8 clients logged in as the same agent) and
  as 8 agents (one each: their boards are not shared, the realistic case), and the
  agent's conversation timeline (#timeline, 10 s) polled with the stamp of the copy
  on screen, as the page does (answered 204 when nothing is new)
- references: the timeline when something is new (the whole timeline rendered)
- the history page: first page of a 2-character Chinese query (no polling; no target)
- then every polled fragment again with FRAGMENT_CACHE_SECONDS=0: what one poll costs
  when nobody asked for the same thing within the cache lifetime (reference rows)

Every response must be a 200 with a non-empty body holding the fragment's marker (a
redirect to the login page would otherwise pass for a fast answer), or a 204 where the
poll carries a stamp; anything else counts as an error, and a run with errors is
reported as failed (exit status 1).

Printed per endpoint: requests, errors, p50/p95/p99 latency (ms), requests/s, the ratio
to the trivial view's requests/s, SQL queries per request and the in-process time of
one request alone (both measured once with Django's test client, no concurrency, with
the fragment cache off), and PASS/FAIL. Targets for the polled fragments: p95 <= 30 ms
and >= 25 % of the trivial view's requests/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Only ever used for the benchmark database (it encrypts the bench account's secret).
BENCH_SECRET_KEY = "kfadmin-bench-dashboard-not-a-production-key-0123456789"
BENCH_FIELD_KEY = "kfadmin-bench-dashboard-field-key-not-for-production"
PASSWORD = "bench-dashboard-pass-2718"
APPID = "wxbenchdashboard001"
WECHAT_ID = "bench_oa"
SUPERVISOR_USERNAME = "bench_supervisor"
APP_SECRET = "bench-secret-0123456789abcdef0123"
RECORDS = "messaging_messagerecord"

P95_TARGET_MS = 30.0
RATIO_TARGET = 0.25


# =========================================================================== data


def _copy(raw, table: str, columns: list[str], types: list[str], rows) -> None:
    with raw.cursor() as cursor, raw.transaction():
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)


def supervisor_names(count: int) -> list[str]:
    return [SUPERVISOR_USERNAME] + [f"{SUPERVISOR_USERNAME}{n}" for n in range(2, count + 1)]


def build(args, *, online_share: float = 0.75, supervisors: int = 1) -> None:
    """Everything the dashboard reads, for one busy official account (and a second one).

    `online_share` of the agents are online; `supervisors` supervisors are named
    bench_supervisor, bench_supervisor2, ... (bench/polling.py asks for all agents
    online and one supervisor per 50 agents)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from accounts.models import Agent, Membership, OfficialAccount, SyncState
    from bench.search import archive_rows, copy_into_archive, random_openid

    rng = random.Random(args.seed)
    now = datetime.now(tz=UTC)
    end = int(now.timestamp())
    main = OfficialAccount.objects.create(
        name="bench", appid=APPID, secret=APP_SECRET, wechat_id=WECHAT_ID,
        agent_capacity=args.capacity, waiting_count=args.waiting,
    )
    other = OfficialAccount.objects.create(
        name="other", appid="wxbenchdashboard002", secret=APP_SECRET, wechat_id="other_oa"
    )

    # Agents: `online_share` online (three in four here); `accepted_case` is set from the open sessions below.
    agents = Agent.objects.bulk_create(
        Agent(
            official_account=main, kf_account=f"kf{n:03d}@{WECHAT_ID}", kf_id=str(1000 + n), kf_nick=f"客服{n:03d}",
            kf_wx=f"worker_wx{n:03d}", online_status=1 if rng.random() < online_share else 0, last_listed_at=now,
        )
        for n in range(1, args.agents + 1)
    )
    # People: the supervisors, one dashboard user per agent, a few auditors; one password hash.
    User = get_user_model()
    hashed = make_password(PASSWORD)
    bosses = supervisor_names(supervisors)
    names = bosses + [f"bench_agent{n:03d}" for n in range(1, args.agents + 1)] + [
        f"bench_auditor{n}" for n in range(1, 4)
    ]
    users = {u.username: u for u in User.objects.bulk_create(User(username=n, password=hashed) for n in names)}
    Membership.objects.bulk_create(
        [Membership(user=users[name], official_account=main, role=Membership.Role.SUPERVISOR) for name in bosses]
        + [
            Membership(user=users[f"bench_agent{n:03d}"], official_account=main, role=Membership.Role.AGENT,
                       agent=agents[n - 1])
            for n in range(1, args.agents + 1)
        ]
        + [Membership(user=users[f"bench_auditor{n}"], official_account=main, role=Membership.Role.AUDITOR)
           for n in range(1, 4)]
    )
    SyncState.objects.bulk_create(
        SyncState(official_account=main, job=job, last_started_at=now, last_success_at=now,
                  cursor=now if job == SyncState.Job.HISTORY else None)
        for job in (SyncState.Job.AGENTS, SyncState.Job.ONLINE, SyncState.Job.QUEUE,
                    SyncState.Job.SESSIONS, SyncState.Job.HISTORY)
    )

    connection.ensure_connection()
    raw = connection.connection  # Django keeps it in autocommit mode
    began = time.perf_counter()
    openids = list(dict.fromkeys(random_openid(rng) for _ in range(args.customers)))
    _copy(
        raw, "sessions_app_customer",
        ["official_account_id", "openid", "first_seen_at", "last_seen_at", "last_message_at",
         "window_expires_at", "window_remaining", "last_interaction_at", "event_remaining"],
        ["int8", "text", "timestamptz", "timestamptz", "timestamptz", "timestamptz", "int2", "timestamptz", "int2"],
        (
            (main.pk, o, now - timedelta(days=400), seen, seen, seen + timedelta(hours=48), 5, seen, 0)
            for o in openids
            for seen in [now - timedelta(seconds=rng.randint(0, 365 * 86400))]
        ),
    )
    with raw.cursor() as cursor:
        cursor.execute("SELECT openid, id FROM sessions_app_customer WHERE official_account_id = %s", [main.pk])
        customer_ids = dict(cursor.fetchall())
    print(f"  customers: {len(openids):,} in {time.perf_counter() - began:.1f} s", flush=True)

    # Sessions: a closed history, then the live ones on distinct customers.
    began = time.perf_counter()
    agent_ids = [a.pk for a in agents]
    live = rng.sample(openids, args.waiting + args.open_sessions)
    open_count: dict[int, int] = {}

    def session_rows():
        for _ in range(args.closed_sessions):
            created = now - timedelta(seconds=rng.randint(600, 365 * 86400))
            yield (main.pk, customer_ids[rng.choice(openids)], rng.choice(agent_ids), "closed", created,
                   created + timedelta(seconds=rng.randint(5, 600)), created + timedelta(seconds=rng.randint(600, 7200)),
                   created, created, created)
        for i, openid in enumerate(live):
            if i < args.waiting:
                created = now - timedelta(seconds=rng.randint(5, 1800))
                yield (main.pk, customer_ids[openid], None, "waiting", created, None, None, created, now, now)
            else:
                agent_id = rng.choice(agent_ids)
                open_count[agent_id] = open_count.get(agent_id, 0) + 1
                created = now - timedelta(seconds=rng.randint(60, 3 * 3600))
                accepted = created + timedelta(seconds=rng.randint(5, 300))
                yield (main.pk, customer_ids[openid], agent_id, "open", created, accepted, None, created, now, now)

    _copy(
        raw, "sessions_app_kfsession",
        ["official_account_id", "customer_id", "agent_id", "state", "created_at", "accepted_at", "closed_at",
         "latest_time", "last_synced_at", "updated_at"],
        ["int8", "int8", "int8", "text"] + ["timestamptz"] * 6,
        session_rows(),
    )
    for agent in agents:
        agent.accepted_case = open_count.get(agent.pk, 0)
    Agent.objects.bulk_update(agents, ["accepted_case"])
    print(f"  sessions: {args.closed_sessions:,} closed, {args.open_sessions:,} open, {args.waiting:,} waiting "
          f"in {time.perf_counter() - began:.1f} s", flush=True)

    began = time.perf_counter()
    workers = [a.kf_account for a in agents]
    rows = archive_rows(
        rows=args.records, seed=args.seed, account_ids=(main.pk, other.pk), openids=openids, workers=workers,
        end=end,
    )
    copy_into_archive(raw, rows, args.records)
    print(f"  archive: {args.records:,} records in {time.perf_counter() - began:.0f} s", flush=True)
    began = time.perf_counter()
    with raw.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
        cursor.execute("CHECKPOINT")  # the load's dirty pages are not written during the measurement
    print(f"  VACUUM ANALYZE, CHECKPOINT in {time.perf_counter() - began:.0f} s", flush=True)


# =========================================================================== HTTP


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


def _dechunk(body: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2:end + 2 + size])
        pos = end + 2 + size + 2


def http(host: str, port: int, request: bytes, timeout: float = 30.0) -> Response:
    """One request on a fresh connection (`Connection: close`), read to the end."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(262144):
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    if any(k == "transfer-encoding" and "chunked" in v.lower() for k, v in headers):
        body = _dechunk(body)
    return Response(status, headers, body)


def request_bytes(host: str, port: int, method: str, path: str, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
             "User-Agent: kfadmin-bench-dashboard", "Accept: text/html,*/*;q=0.8"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def login(host: str, port: int, username: str) -> str:
    """Log in through the real form; returns the Cookie header of the session."""
    page = http(host, port, request_bytes(host, port, "GET", "/login/"))
    cookies = _cookies(page, {})
    found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
    if page.status != 200 or not found or "csrftoken" not in cookies:
        raise SystemExit(f"GET /login/ answered {page.status} without a CSRF token")
    form = urlencode({"csrfmiddlewaretoken": found.group(1).decode(), "username": username,
                      "password": PASSWORD, "next": "/"}).encode()
    answer = http(host, port, request_bytes(host, port, "POST", "/login/", {
        "Content-Type": "application/x-www-form-urlencoded", "Origin": f"http://{host}:{port}",
        "Referer": f"http://{host}:{port}/login/", "Cookie": _cookie_header(cookies),
    }, form))
    cookies = _cookies(answer, cookies)
    if answer.status != 302 or "sessionid" not in cookies:
        raise SystemExit(f"logging in as {username} failed: HTTP {answer.status}")
    return _cookie_header(cookies)


def _cookies(response: Response, jar: dict[str, str]) -> dict[str, str]:
    jar = dict(jar)
    for name, value in response.headers:
        if name == "set-cookie":
            key, _, rest = value.partition("=")
            jar[key.strip()] = rest.split(";", 1)[0]
    return jar


def _cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


# =========================================================================== load


@dataclass
class Endpoint:
    label: str
    path: str
    marker: bytes  # must be in every answer's body
    # "trivial", "floor" or "reference" (no target), "polled", "uncached" (reference) or "page" (no target)
    kind: str
    user: str | tuple[str, ...] | None = None  # None: no session; several: one per client, in turn
    hx_target: str | None = None  # for htmx requests: the polled element's id
    # The poll carries the stamp of the copy on screen: "204 No Content" (nothing new)
    # is a right answer too.
    may_be_unchanged: bool = False
    # The poll carries the token of the copy on screen (`?v=`, accounts/live.py), read
    # from the region just before the endpoint is measured, and nothing changes
    # meanwhile: every answer must be a 204.
    unchanged: bool = False

    @property
    def users(self) -> tuple[str, ...]:
        if self.user is None:
            return ()
        return (self.user,) if isinstance(self.user, str) else self.user

    def headers(self, host: str, port: int, cookie: str | None) -> dict[str, str]:
        out = {}
        if cookie:
            out["Cookie"] = cookie
        if self.hx_target:
            # What htmx 2 sends for a polled element that is its own target.
            out.update({"HX-Request": "true", "HX-Target": self.hx_target, "HX-Trigger": self.hx_target,
                        "HX-Current-URL": f"http://{host}:{port}{self.path}"})
        return out


@dataclass
class Result:
    endpoint: Endpoint
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    machine_cpu: float = 0.0  # share of all cores busy during the run
    client_cpu: float = 0.0  # share of all cores the load generator used
    # The trivial view's req/s measured just before this endpoint (the machine's speed
    # drifts during a run; the ratio compares neighbours).
    baseline_rate: float = 0.0

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline_rate if self.baseline_rate else 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.errors

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores from /proc/stat (Linux)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def run_load(host: str, port: int, endpoint: Endpoint, cookies: list[str | None], *, clients: int, seconds: float,
             max_requests: int, warmup: float) -> Result:
    """`clients` threads, each sending one request after the other, until `seconds`
    have passed or `max_requests` were sent; a warm-up of the same shape first.
    Client i sends the session cookie `cookies[i % len(cookies)]`."""
    requests = [request_bytes(host, port, "GET", endpoint.path, endpoint.headers(host, port, c)) for c in cookies]

    def one(result: Result, lock: threading.Lock, request: bytes) -> None:
        began = time.perf_counter()
        problem = None
        try:
            answer = http(host, port, request)
        except OSError as failure:
            problem = f"{type(failure).__name__}: {failure}"
        else:
            if answer.status == 204 and (endpoint.may_be_unchanged or endpoint.unchanged):
                pass
            elif endpoint.unchanged:
                problem = f"HTTP {answer.status} where nothing changed (expected 204)"
            elif answer.status != 200:
                problem = f"HTTP {answer.status} {answer.header('location') or ''}".strip()
            elif not answer.body:
                problem = "empty body"
            elif endpoint.marker not in answer.body:
                problem = f"marker {endpoint.marker!r} missing"
        elapsed = (time.perf_counter() - began) * 1000
        if problem is None:
            result.latencies_ms.append(elapsed)  # list.append is atomic
        else:
            with lock:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(problem)

    def phase(duration: float, budget: int) -> Result:
        result = Result(endpoint)
        lock = threading.Lock()
        counter = itertools.count()
        start = threading.Barrier(clients + 1)
        deadline = [0.0]

        def worker(request: bytes) -> None:
            start.wait()
            while time.perf_counter() < deadline[0] and next(counter) < budget:
                one(result, lock, request)

        threads = [threading.Thread(target=worker, args=(requests[i % len(requests)],), daemon=True)
                   for i in range(clients)]
        for thread in threads:
            thread.start()
        busy0, total0 = _cpu_ticks()
        cpu0 = time.process_time()
        began = time.perf_counter()
        deadline[0] = began + duration
        start.wait()
        for thread in threads:
            thread.join()
        result.seconds = time.perf_counter() - began
        busy1, total1 = _cpu_ticks()
        if total1 > total0:
            result.machine_cpu = (busy1 - busy0) / (total1 - total0)
        cores = os.cpu_count() or 1
        result.client_cpu = (time.process_time() - cpu0) / result.seconds / cores
        return result

    if warmup > 0:
        phase(warmup, max_requests)
    return phase(seconds, max_requests)


# =========================================================================== server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(args, database_url: str, port: int, log, *, fragment_cache: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": BENCH_SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        # As in production: a cache shared by the workers (sessions, polled fragments).
        "CACHE_URL": args.cache_url,
        "FRAGMENT_CACHE_SECONDS": f"{fragment_cache:g}",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "-m", "gunicorn", "kfadmin.wsgi", "-w", str(args.workers),
               "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    return wait_until_up(process, port)


def wait_until_up(process: subprocess.Popen, port: int, seconds: float = 60) -> subprocess.Popen:
    """Wait until the gunicorn `process` answers /healthz on `port` with a 200."""
    deadline = time.monotonic() + seconds
    probe = request_bytes("127.0.0.1", port, "GET", "/healthz")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            if http("127.0.0.1", port, probe, timeout=2).status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz within {seconds:g} s")


def stop_gunicorn(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # the master stops its workers gracefully
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: the master and its workers
        process.wait(timeout=5)


# =========================================================================== measuring


@dataclass
class Profile:
    queries: int
    alone_ms: float
    slowest: list[tuple[float, str]]


def profile(endpoint: Endpoint, user, runs: int = 15) -> Profile:
    """SQL queries of one request and its time alone, in this process (Django's test client)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    if user is not None:
        client.force_login(user)
    headers = {k: v for k, v in endpoint.headers("testserver", 80, None).items() if k.startswith("HX-")}
    if endpoint.unchanged:
        body = client.get(endpoint.path, headers=headers).content.decode()
        endpoint = dataclasses.replace(endpoint, path=poll_url(body, endpoint.hx_target or ""))
    for _ in range(3):
        client.get(endpoint.path, headers=headers)
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(endpoint.path, headers=headers)
    # Copied now: every request start clears the connection's query log.
    queries = list(captured.captured_queries)
    if endpoint.unchanged and response.status_code != 204:
        raise SystemExit(f"{endpoint.label}: {endpoint.path} answered {response.status_code} in process, not 204")
    if response.status_code != 200 and not (response.status_code == 204 and (endpoint.may_be_unchanged or endpoint.unchanged)):
        raise SystemExit(f"{endpoint.label}: {endpoint.path} answered {response.status_code} in process")
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        client.get(endpoint.path, headers=headers)
        times.append((time.perf_counter() - began) * 1000)
    slowest = sorted(((float(q["time"]) * 1000, q["sql"]) for q in queries), reverse=True)
    return Profile(len(queries), statistics.median(times), slowest)


def poll_url(body: str, target: str) -> str:
    """The URL a region polls, with the token of what it shows, as the page has it."""
    import html

    match = re.search(rf'id="{target}"[^>]*?hx-get="([^"]*)"', body)
    if match is None or "v=" not in match.group(1):
        raise SystemExit(f"#{target}: no poll URL with a token in the answer")
    return html.unescape(match.group(1))


def tokenized(host: str, port: int, endpoint: Endpoint, cookie: str | None) -> Endpoint:
    """The endpoint polled with the token its region shows right now."""
    answer = http(host, port, request_bytes(host, port, "GET", endpoint.path, endpoint.headers(host, port, cookie)))
    if answer.status != 200:
        raise SystemExit(f"{endpoint.label}: {endpoint.path} answered {answer.status}")
    return dataclasses.replace(endpoint, path=poll_url(answer.body.decode(), endpoint.hx_target or ""))


def unchanged_plan(targets: list[Endpoint], facts: dict) -> list[Endpoint]:
    """Every polled region, polled with the token of the copy on screen while nothing
    changes (each answer a 204), beside the floor; then each rendered, which is what
    an unchanged poll cost before versions."""
    sup, ag, agents = SUPERVISOR_USERNAME, facts["agent_username"], facts["agent_usernames"]
    conversation = f"/conversations/{quote(facts['customer'])}/"
    card = f"/agents/{facts['agent'].pk}/"
    regions = [
        Endpoint("overview #overview", "/", b"", "unchanged", sup, "overview"),
        Endpoint("queue #queue-waiting", "/queue/", b"", "unchanged", sup, "queue-waiting"),
        Endpoint("queue #open-sessions", "/queue/", b"", "unchanged", sup, "open-sessions"),
        Endpoint("queue #open-sessions ?agent", f"/queue/?agent={facts['agent'].pk}", b"", "unchanged", sup,
                 "open-sessions"),
        Endpoint("agent #open-sessions", "/queue/", b"", "unchanged", ag, "open-sessions"),
        Endpoint("queue #auto-assign-status", "/queue/", b"", "unchanged", sup, "auto-assign-status"),
        Endpoint("agents #agent-table", "/agents/", b"", "unchanged", sup, "agent-table"),
        Endpoint("agent page #agent-card", card, b"", "unchanged", sup, "agent-card"),
        Endpoint("agent #inbox", "/inbox/", b"", "unchanged", ag, "inbox"),
        Endpoint("agent #alerts", "/alerts/", b"", "unchanged", ag, "alerts"),
        Endpoint("agent #timeline", conversation, b"", "unchanged", ag, "timeline"),
        Endpoint("agent #conversation-session", conversation, b"", "unchanged", ag, "conversation-session"),
    ]
    unchanged = [dataclasses.replace(e, label=f"{e.label} (unchanged)", unchanged=True) for e in regions]
    # Before versions every real poll rendered (a 5 s poll misses a 2 s cache), the
    # timeline excepted: it was polled with its stamp.
    rendered = [dataclasses.replace(e, label=f"{e.label} (rendered)", kind="uncached", marker=f'id="{e.hx_target}"'.encode())
                for e in regions if e.hx_target != "timeline"]
    stamped = [dataclasses.replace(e, label=f"{e.label} (stamp)", kind="uncached") for e in targets if e.may_be_unchanged]
    del agents
    return [targets[0], targets[1], *unchanged, *rendered, *stamped, targets[1], targets[0]]


def endpoints(args) -> tuple[list[Endpoint], dict]:
    """The URLs to measure, and facts about the data they show."""
    from django.db.models import Count, Q

    from accounts.models import Agent, Membership, OfficialAccount
    from messaging.selectors import timeline_stamp
    from sessions_app.models import KfSession

    account = OfficialAccount.objects.get(appid=APPID)
    agents = (
        Agent.objects.filter(official_account=account, online_status__gt=0)
        .annotate(open=Count("sessions", filter=Q(sessions__state=KfSession.State.OPEN)))
        .order_by("kf_account")
    )
    # One agent with a typical load: the online agent closest to the mean.
    total = Agent.objects.filter(official_account=account).count()
    mean = KfSession.objects.filter(official_account=account, state=KfSession.State.OPEN).count() / max(1, total)
    agent = min(agents, key=lambda a: (abs(a.open - mean), a.kf_account))
    member = Membership.objects.select_related("user").get(official_account=account, agent=agent)
    session = (
        KfSession.objects.filter(agent=agent, state=KfSession.State.OPEN).select_related("customer")
        .order_by("accepted_at", "id").first()
    )
    # Eight agents with typical loads, one per client: each polls only their own board,
    # which nobody else sees, so the shared cache cannot help (the realistic case).
    typical = sorted(agents, key=lambda a: (abs(a.open - mean), a.kf_account))[: args.clients]
    agent_names = tuple(
        Membership.objects.filter(official_account=account, agent__in=typical)
        .order_by("agent__kf_account").values_list("user__username", flat=True)
    )
    facts = {
        "account": account,
        "agent": agent,
        "agent_username": member.user.username,
        "agent_usernames": agent_names,
        "agent_sessions": agent.open,
        "customer": session.customer.openid,
        "open": KfSession.objects.filter(official_account=account, state=KfSession.State.OPEN).count(),
        "waiting": KfSession.objects.filter(official_account=account, state=KfSession.State.WAITING).count(),
        "agents": Agent.objects.filter(official_account=account).count(),
    }
    history = "/history/?" + urlencode({"q": args.query})
    conversation = f"/conversations/{quote(session.customer.openid)}/"
    stamp = timeline_stamp(account=account, openid=session.customer.openid, customer=session.customer)
    sup, ag = SUPERVISOR_USERNAME, member.user.username
    return [
        TRIVIAL,
        # An account fragment that reads nothing: the fixed cost of every polled fragment
        # (session, user, account and role).
        Endpoint("floor /queue/panel/", "/queue/panel/", b'id="action-panel"', "floor", sup, "action-panel"),
        Endpoint("overview #overview", "/", b'id="overview"', "polled", sup, "overview"),
        Endpoint("queue #queue-waiting", "/queue/", b'id="queue-waiting"', "polled", sup, "queue-waiting"),
        Endpoint("queue #open-sessions", "/queue/", b'id="open-sessions"', "polled", sup, "open-sessions"),
        Endpoint("queue #open-sessions ?agent", f"/queue/?agent={agent.pk}", b'id="open-sessions"', "polled", sup,
                 "open-sessions"),
        Endpoint("agent #open-sessions", "/queue/", b'id="open-sessions"', "polled", ag, "open-sessions"),
        Endpoint(f"{len(agent_names)} agents #open-sessions", "/queue/", b'id="open-sessions"', "polled", agent_names,
                 "open-sessions"),
        # The timeline polls with the stamp of what it shows: nothing new is a 204.
        Endpoint("agent #timeline", f"{conversation}?stamp={quote(stamp)}", b'id="timeline"', "polled", ag, "timeline",
                 may_be_unchanged=True),
        # ... and when something is new, the whole timeline (100 messages) is rendered.
        Endpoint("agent #timeline, news", conversation, b'id="timeline"', "reference", ag, "timeline"),
        Endpoint(f"history q={args.query}", history, b"<mark>", "page", sup),
    ], facts


def refresh_sync_state() -> None:
    """The sync jobs just succeeded, as beat keeps them in production (no lag banner)."""
    from django.utils import timezone

    from accounts.models import SyncState

    now = timezone.now()
    SyncState.objects.filter(official_account__appid=APPID).update(last_started_at=now, last_success_at=now)


TRIVIAL = Endpoint("trivial /healthz", "/healthz", b'"ok"', "trivial")


def run_phase(args, database_url: str, host: str, plan: list[Endpoint], *, fragment_cache: float) -> list[Result]:
    """Start gunicorn with the given fragment cache (the shared cache emptied first),
    log everyone in through the login form, and load each endpoint in turn."""
    import redis
    from django.db import connection

    redis.Redis.from_url(args.cache_url).flushdb()
    port = free_port()
    results = []
    process = None
    with tempfile.TemporaryFile() as log:
        try:
            process = start_gunicorn(args, database_url, port, log, fragment_cache=fragment_cache)
            cookies = {name: login(host, port, name) for name in sorted({n for e in plan for n in e.users})}
            for endpoint in plan:
                refresh_sync_state()
                connection.close()
                baseline = run_load(host, port, TRIVIAL, [None], clients=args.clients, seconds=args.baseline_seconds,
                                    max_requests=args.max_requests, warmup=args.warmup)
                jar = [cookies[n] for n in endpoint.users] or [None]
                if endpoint.unchanged:
                    endpoint = tokenized(host, port, endpoint, jar[0])
                result = run_load(host, port, endpoint, jar, clients=args.clients, seconds=args.seconds,
                                  max_requests=args.max_requests, warmup=args.warmup)
                result.baseline_rate = baseline.rate
                results.append(result)
                print(f"  {endpoint.label:<38} {result.requests:>7,} requests  {result.errors} errors  "
                      f"p95 {result.pct(0.95):7.1f} ms  {result.rate:8,.0f}/s", flush=True)
        finally:
            stop_gunicorn(process)
            log.seek(0)
            tail = log.read().decode(errors="replace").strip()
            if tail and (process is None or process.returncode not in (0, None) or args.verbose):
                print("gunicorn said:\n" + tail[-4000:])
    return results


def measure(args, database_url: str) -> bool:
    from django.contrib.auth import get_user_model
    from django.db import connection

    targets, facts = endpoints(args)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {RECORDS}")
        records = cursor.fetchone()[0]
    print(f"data: {records:,} records, {facts['agents']} agents, {facts['open']:,} open sessions, "
          f"{facts['waiting']} waiting; agent {facts['agent'].kf_account} holds {facts['agent_sessions']} sessions")

    User = get_user_model()
    names = {n for e in targets for n in e.users} | {facts["agent_username"]}
    users = {u.username: u for u in User.objects.filter(username__in=names)}
    refresh_sync_state()
    profiles = {}
    for endpoint in targets:
        # In this process the fragment cache is off: the full work of one request.
        profiles[endpoint.label] = profile(endpoint, users[endpoint.users[0]] if endpoint.users else None)
    connection.close()

    host = "127.0.0.1"
    sys.setswitchinterval(0.0005)  # client threads wake promptly: latencies are not GIL waits
    busy0, total0 = _cpu_ticks()
    time.sleep(2)
    busy1, total1 = _cpu_ticks()
    idle_busy = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
    print(f"gunicorn kfadmin.wsgi -w {args.workers}; {args.clients} clients, "
          f"{args.seconds:g} s or {args.max_requests:,} requests per endpoint after {args.warmup:g} s warm-up; "
          f"cache {args.cache_url}; CPU busy before the run: {idle_busy:.0%}", flush=True)
    if idle_busy > 0.2:
        print("  warning: something else is using the CPU; the figures will be low and noisy", flush=True)
    results: list[Result] = []
    # The product as configured (polled fragments cached for --fragment-cache seconds),
    # then the polled fragments again with the cache off: what each poll costs when
    # nobody else just asked for the same thing.
    phases = [] if args.only_unchanged else [(args.fragment_cache, [targets[0], *targets[1:], targets[0]])]
    if args.unchanged or args.only_unchanged:
        # Every region polled with its token while nothing changes, the fragment cache
        # off: what an unchanged poll costs, against the floor measured beside it.
        plan = unchanged_plan(targets, facts)
        for e in plan:
            if e.label not in profiles:
                profiles[e.label] = profile(e, users[e.users[0]] if e.users else None)
        connection.close()
        phases.append((0, plan))
    if args.fragment_cache > 0 and not args.skip_uncached and not args.only_unchanged:
        uncached = [dataclasses.replace(e, label=f"{e.label} (no cache)", kind="uncached")
                    for e in targets if e.kind == "polled"]
        for e in uncached:
            profiles[e.label] = profiles[e.label.removesuffix(" (no cache)")]
        phases.append((0, uncached))
    ok, rounds = True, []
    for round_number in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"round {round_number} of {args.repeat}", flush=True)
        results = []
        for fragment_cache, plan in phases:
            print(f"FRAGMENT_CACHE_SECONDS={fragment_cache:g}", flush=True)
            results += run_phase(args, database_url, host, plan, fragment_cache=fragment_cache)
        ok = report(args, results, profiles, records) and ok
        rounds.append(results)
    if args.repeat > 1:
        summarize(rounds)
    return ok


def summarize(rounds: list[list[Result]]) -> None:
    """The polled fragments over all rounds: each round's ratio against that round's
    trivial view, and the verdict on the medians."""
    print(f"\nover {len(rounds)} rounds (ratio and p95 of each round; verdict on the medians):")
    ratios: dict[str, list[float]] = {}
    p95s: dict[str, list[float]] = {}
    for results in rounds:
        for r in results:
            if r.endpoint.kind == "polled":
                ratios.setdefault(r.endpoint.label, []).append(r.ratio)
                p95s.setdefault(r.endpoint.label, []).append(r.pct(0.95))
    for label, values in ratios.items():
        ratio, p95 = statistics.median(values), statistics.median(p95s[label])
        verdict = "PASS" if ratio >= RATIO_TARGET and p95 <= P95_TARGET_MS else "FAIL"
        print(f"  {label:<38} ratio {' '.join(f'{v:.2f}' for v in values)} (median {ratio:.2f})  "
              f"p95 ms {' '.join(f'{v:.1f}' for v in p95s[label])} (median {p95:.1f})  {verdict}")


def report(args, results: list[Result], profiles: dict[str, Profile], records: int) -> bool:
    trivial = [r for r in results if r.endpoint.kind == "trivial"]
    base = statistics.mean(r.rate for r in trivial)
    print()
    print(f"records {records:,}; trivial view {base:,.0f} req/s (mean of the first and last run: "
          f"{trivial[0].rate:,.0f} and {trivial[-1].rate:,.0f}); each ratio is against the trivial view "
          f"measured just before that endpoint ({args.baseline_seconds:g} s); targets for polled fragments: "
          f"p95 <= {P95_TARGET_MS:g} ms and >= {RATIO_TARGET:.0%} of the trivial view's req/s")
    header = (f"{'endpoint':<38} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
              f"{'req/s':>7} {'ratio':>6} {'queries':>7} {'alone ms':>8} {'cpu':>4} {'gen':>4}  result")
    print(header)
    print("-" * len(header))
    failed, missed = False, []
    for r in results:
        ratio = r.ratio
        prof = profiles[r.endpoint.label]
        if r.errors:
            verdict = "FAILED (errors)"
            failed = True
        elif r.endpoint.kind == "polled":
            checks = []
            if r.pct(0.95) > P95_TARGET_MS:
                checks.append("p95")
            if ratio < RATIO_TARGET:
                checks.append("req/s")
            verdict = "PASS" if not checks else "FAIL (" + ", ".join(checks) + ")"
            if checks:
                missed.append(r.endpoint.label)
        else:
            verdict = {"trivial": "baseline", "floor": "reference", "reference": "reference",
                       "uncached": "reference", "unchanged": "reference"}.get(
                r.endpoint.kind, "no target"
            )
        print(f"{r.endpoint.label:<38} {r.requests:>8,} {r.errors:>6} {r.pct(0.50):>7.1f} {r.pct(0.95):>7.1f} "
              f"{r.pct(0.99):>7.1f} {r.rate:>7,.0f} {ratio:>6.2f} {prof.queries:>7} {prof.alone_ms:>8.1f} "
              f"{r.machine_cpu:>4.0%} {r.client_cpu:>4.0%}  {verdict}")
        for sample in r.error_samples:
            print(f"    error: {sample}")
    floors = [r for r in results if r.endpoint.kind == "floor"]
    compared = [r for r in results if r.endpoint.unchanged or r.endpoint.kind == "uncached"]
    if floors and compared:
        floor_rate = statistics.mean(r.rate for r in floors)
        floor_alone = profiles[floors[0].endpoint.label].alone_ms
        print()
        print(f"cost of one poll against the floor ({floor_rate:,.0f} req/s under load, {floor_alone:.2f} ms alone): "
              "floor req/s / its req/s, and its time alone / the floor's")
        for r in compared:
            prof = profiles[r.endpoint.label]
            print(f"  {r.endpoint.label:<48} {floor_rate / r.rate if r.rate else float('nan'):6.2f} x under load  "
                  f"{prof.alone_ms / floor_alone if floor_alone else float('nan'):6.2f} x alone  "
                  f"({prof.queries} queries)")
    print()
    print("queries, alone ms: SQL queries per request and the median time of one request with no concurrency")
    print("(Django test client in the benchmark process); cpu: all cores busy during the run; gen: the share")
    print("of all cores the load generator itself used.")
    if args.queries:
        for label, prof in profiles.items():
            print(f"\n{label}: {prof.queries} queries")
            for ms, sql in prof.slowest[:args.queries_shown]:
                print(f"  {ms:7.2f} ms  {sql[:300]}")
    print()
    if failed:
        print("FAILED: some requests did not answer 200 with the expected fragment")
    elif missed:
        print("targets missed: " + ", ".join(missed))
    else:
        print("all targets met")
    return not failed


# =========================================================================== main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000_000, help="archived records (default 10,000,000)")
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--open-sessions", type=int, default=2000)
    parser.add_argument("--waiting", type=int, default=100)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--closed-sessions", type=int, default=None, help="default: records / 10")
    parser.add_argument("--capacity", type=int, default=15, help="sessions per agent (the account's setting)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--query", default="退款", help="the history search (a 2-character word by default)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per endpoint")
    parser.add_argument("--max-requests", type=int, default=20_000, help="requests per endpoint at most")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per endpoint")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/14",
                        help="the cache gunicorn's workers share (CACHE_URL; emptied before each phase)")
    parser.add_argument("--fragment-cache", type=float, default=2.0,
                        help="FRAGMENT_CACHE_SECONDS for the main run (default 2, the product's default)")
    parser.add_argument("--baseline-seconds", type=float, default=4.0,
                        help="the trivial view measured before each endpoint, for its ratio (default 4 s)")
    parser.add_argument("--repeat", type=int, default=1, help="measure this many rounds and summarise them")
    parser.add_argument("--unchanged", action="store_true",
                        help="also poll every live region with the token it shows while nothing changes (204)")
    parser.add_argument("--only-unchanged", action="store_true",
                        help="measure only that phase (every region unchanged, and rendered where not measured otherwise)")
    parser.add_argument("--skip-uncached", action="store_true",
                        help="do not measure the polled fragments again with the cache off")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--database", default="kfadmin_bench_dashboard")
    parser.add_argument("--reuse", action="store_true", help="reuse the database of an earlier run")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    parser.add_argument("--queries", action="store_true", help="print each endpoint's slowest SQL queries (Django's timing: whole ms, fetching included)")
    parser.add_argument("--queries-shown", type=int, default=6, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="print gunicorn's log")
    args = parser.parse_args()
    if not args.database.startswith("kfadmin_bench"):
        parser.error("the database name must start with kfadmin_bench (it is dropped)")
    if args.closed_sessions is None:
        args.closed_sessions = args.records // 10
    if args.waiting + args.open_sessions > args.customers:
        parser.error("--customers must cover the waiting and open sessions")

    import psycopg

    database_url = f"{args.server}/{args.database}"
    os.environ["DATABASE_URL"] = database_url
    os.environ["SECRET_KEY"] = BENCH_SECRET_KEY
    os.environ["FIELD_ENCRYPTION_KEY"] = BENCH_FIELD_KEY  # required with DEBUG off; gunicorn inherits it
    os.environ["DEBUG"] = "false"  # the in-process profile runs with production settings too
    os.environ["FRAGMENT_CACHE_SECONDS"] = "0"  # ... and renders every request in full
    # ... with the versions of the live regions in the shared cache, as gunicorn has them.
    os.environ["CACHE_URL"] = args.cache_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kfadmin.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if not args.reuse:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{args.database}"')
    import django

    # WhiteNoise warns once per process that `collectstatic` never ran: irrelevant here.
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    ok = False
    try:
        call_command("migrate", verbosity=0)  # with --reuse: applies migrations added since
        from accounts.models import OfficialAccount

        if args.reuse:
            if not OfficialAccount.objects.filter(appid=APPID).exists():
                raise SystemExit(f"{args.database} holds no benchmark data: run without --reuse first")
        else:
            print(f"building {args.database}: {args.records:,} records ...", flush=True)
            began = time.perf_counter()
            build(args)
            print(f"built in {time.perf_counter() - began:.0f} s", flush=True)
        ok = measure(args, database_url)
    finally:
        connection.close()
        if args.drop:
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

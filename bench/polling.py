"""Benchmark: browsers polling the live regions of kfadmin's pages, at real scale.

    scripts/uv run python bench/polling.py --agents 100 200 1000 --seconds 60
    scripts/uv run python bench/polling.py --agents 100 200 1000 --seconds 60 --reuse   # keep the data
    scripts/uv run python bench/polling.py --agents 200 --seconds 30 --reuse             # one size, quick

For each number of agents N it builds (or with --reuse finds) its own database,
`kfadmin_bench_polling_<N>`, with bench/dashboard.py's builder: one official account
whose N agents are all online, each bound to a dashboard user with the agent role,
one supervisor per 50 agents (at least 2), 3 open sessions per agent, a waiting
queue, a closed-session history and an archive (500,000 records by default).

Then, as in production: the bundled WeChat emulator serves the account (built from
the database: the agents, the waiting customers, the open sessions), gunicorn runs
as the README documents (`gunicorn -c gunicorn.conf.py`; the access log goes to a
file with the htmx target and the time taken, see below), and a Celery worker with
beat (`celery -A kfadmin worker --beat`, the Procfile's queues and concurrency) runs
every sync on its schedule, with Redis as broker and cache. Meanwhile customers write
through the emulator's control API: every open session's customer about once a
minute (the live tail brings it into the conversation), newcomers join the queue
(N per 10 minutes) and agents take them (the queue and session syncs bring that to
the boards). So some polls must change.

The browsers (asyncio + aiohttp, in --client-processes processes of their own): every
agent has the queue page and one of their conversations open, every supervisor the
overview and the queue board (every other one with an agent picked). A browser
fetches each page once (its own connections, at most 6, kept alive 4 s), extracts
every live region (an element with an id, `hx-get` and an `hx-trigger` containing
`every Ns`) and polls each on its own schedule from a random phase, as htmx 2 does:
the headers a browser sends (HX-Request, HX-Target and HX-Trigger = the region's
id, HX-Current-URL = the page, the session cookie); the next timer is set when one
fires; a timer firing while the region's request is still out queues one request
(htmx's default `queue:last`) that is sent when the answer comes; a 200 swaps the
region: its hx-get and hx-trigger are taken from the returned element (a region may
carry a version in its URL) and its timer starts again; a 204 keeps the region and its
timer. The supervisors' browsers also ask for the floor, the empty action panel
`/queue/panel/` (an authenticated fragment that reads nothing), every 2 s.

Measured over --seconds after --warmup seconds of polling:
- demanded requests/s (timers that fired) and delivered (answers received);
- lateness: when a poll was sent against when its timer fired (a poll still
  waiting at the end counts with its wait so far);
- per region: answers, p50/p95/p99 latency, the share of 200 and 204, errors;
- server time per request from gunicorn's access log (%(D)s, by HX-Target): the mean
  per poll against the floor's mean in the same run;
- the client's own capacity: its CPU per request and its event loop's lag, so a
  shortfall is put where it belongs;
- the load average, the machine's CPU use and gunicorn's and Celery's share of it.

Targets (issue 12; ratios in one run): delivered >= 0.98 x demanded, p95 <= 50 ms,
p99 <= 150 ms over all polls, mean server time per poll <= 2 x the floor's.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dashboard import (  # noqa: E402  (after the path is set)
    APP_SECRET,
    APPID,
    BENCH_FIELD_KEY,
    BENCH_SECRET_KEY,
    WECHAT_ID,
    _cpu_ticks,
    build,
    free_port,
    stop_gunicorn,
    wait_until_up,
)

DELIVERED_TARGET = 0.98
P95_TARGET_MS = 50.0
P99_TARGET_MS = 150.0
FLOOR_RATIO_TARGET = 2.0
FLOOR_PATH = "/queue/panel/"
FLOOR_ID = "action-panel"
FLOOR_SECONDS = 2.0
# gunicorn.conf.py's access log, with what this benchmark reads: the path, the htmx
# target (which region), the status and the time taken in microseconds.
ACCESS_FORMAT = '%(U)s %({hx-target}i)s %(s)s %(D)s'


# =========================================================================== browsers (client processes)

TAG_WITH_TRIGGER = re.compile(rb'<[a-zA-Z][^<>]*?\shx-trigger="[^"]*"[^<>]*>')
ATTRIBUTE = re.compile(rb'([a-zA-Z_:][-a-zA-Z0-9_:.]*)="([^"]*)"')
EVERY = re.compile(r"(?:^|[\s,])every\s+(\d+(?:\.\d+)?)(ms|s|m)?\b")


def polling_of(tag: bytes) -> tuple[str, str, float] | None:
    """(id, hx-get, seconds) of an opening tag that polls, else None."""
    attributes = {k.decode(): html.unescape(v.decode()) for k, v in ATTRIBUTE.findall(tag)}
    trigger = attributes.get("hx-trigger", "")
    found = EVERY.search(trigger)
    if not found or not attributes.get("id") or not attributes.get("hx-get"):
        return None
    value, unit = float(found.group(1)), found.group(2) or "ms"  # htmx: a bare number is milliseconds
    seconds = value / 1000 if unit == "ms" else value * 60 if unit == "m" else value
    return attributes["id"], attributes["hx-get"], seconds


def live_regions(page: bytes) -> list[tuple[str, str, float]]:
    return [found for tag in TAG_WITH_TRIGGER.findall(page) if (found := polling_of(tag))]


def region_in(body: bytes, region_id: str) -> tuple[str, str, float] | None | bool:
    """The returned element with this id: its polling, None when it stopped polling,
    False when the answer holds no such element."""
    at = body.find(f'id="{region_id}"'.encode())
    if at < 0:
        return False
    start = body.rfind(b"<", 0, at)
    end = body.find(b">", at)
    return polling_of(body[start:end + 1]) if start >= 0 and end > 0 else False


class Region:
    def __init__(self, label: str, page_url: str, region_id: str, url: str, every: float) -> None:
        self.label, self.page_url, self.id, self.url, self.every = label, page_url, region_id, url, every
        self.busy = False
        self.queued_since: float | None = None  # a timer fired while the request was out
        self.timer: asyncio.Task | None = None
        self.stopped = False
        self.session = None  # its own connections (the floor probe), else the browser's


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, Counter] = defaultdict(Counter)
        self.lateness: list[float] = []
        self.demanded = 0
        self.sent = 0
        self.delivered = 0
        self.errors: list[str] = []
        self.loop_lag: list[float] = []
        self.swaps_without_region = 0


async def _browser_load(session, base: str, browser: dict, stats: Stats) -> list[Region]:
    regions = []
    for page in browser["pages"]:
        url = base + page["url"]
        async with session.get(url, allow_redirects=False) as answer:
            body = await answer.read()
        if answer.status != 200:
            raise SystemExit(f"{browser['name']}: GET {page['url']} answered {answer.status}")
        found = live_regions(body)
        if not found:
            raise SystemExit(f"{browser['name']}: {page['url']} has no live region")
        for region_id, hx_get, every in found:
            regions.append(Region(f"{browser['role']} {page['label']} #{region_id}", url, region_id, hx_get, every))
    if browser.get("floor"):
        regions.append(Region("floor /queue/panel/", base + "/queue/", FLOOR_ID, FLOOR_PATH, FLOOR_SECONDS))
    return regions


def client_main(spec: dict, conn) -> None:  # noqa: ANN001  (a multiprocessing Connection)
    """One client process: load its browsers' pages, tell the parent, wait for the start
    time, poll until the end of the window, send the figures back."""
    try:
        result = asyncio.run(_client(spec, conn))
    except BaseException as failure:  # noqa: BLE001  (reported to the parent)
        conn.send({"error": f"{type(failure).__name__}: {failure}"})
        raise
    conn.send(result)


async def _client(spec: dict, conn) -> dict:  # noqa: ANN001
    import aiohttp
    from yarl import URL

    base = f"http://{spec['host']}:{spec['port']}"
    rng = random.Random(spec["seed"])
    stats = Stats()
    sessions = []
    timeout = aiohttp.ClientTimeout(total=spec["timeout"])
    loaded: list[tuple[dict, list[Region], object]] = []
    gate = asyncio.Semaphore(8)

    async def load(browser: dict) -> None:
        # A browser: its own connections (at most 6 per host), closed after 4 s idle
        # (gunicorn keeps them 5 s), its own cookies.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=6, keepalive_timeout=4), timeout=timeout,
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers={"User-Agent": "kfadmin-bench-polling", "Accept-Language": "en"},
        )
        session.cookie_jar.update_cookies({spec["cookie_name"]: browser["session"]}, URL(base))
        sessions.append(session)
        async with gate:
            regions = await _browser_load(session, base, browser, stats)
        for region in regions:
            if region.id == FLOOR_ID:
                # The floor is a probe, not a page: it waits for no browser's connection.
                region.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=4), timeout=timeout,
                    cookie_jar=aiohttp.CookieJar(unsafe=True),
                )
                region.session.cookie_jar.update_cookies({spec["cookie_name"]: browser["session"]}, URL(base))
                sessions.append(region.session)
        loaded.append((browser, regions, session))

    began = time.perf_counter()
    await asyncio.gather(*(load(b) for b in spec["browsers"]))
    conn.send({"loaded": len(loaded), "regions": sum(len(r) for _, r, _ in loaded),
               "seconds": time.perf_counter() - began})
    start = await asyncio.to_thread(conn.recv)  # wall-clock start time
    window_start = start + spec["warmup"]
    window_end = window_start + spec["seconds"]
    loop = asyncio.get_running_loop()
    offset = time.time() - loop.time()  # wall = loop time + offset

    def wall() -> float:
        return loop.time() + offset

    def inside(t: float) -> bool:
        return window_start <= t < window_end

    tasks: set[asyncio.Task] = set()

    def spawn(coroutine) -> None:  # noqa: ANN001
        task = asyncio.ensure_future(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def send(session, region: Region, due: float) -> None:  # noqa: ANN001
        region.busy = True
        sent = wall()
        if inside(due):
            stats.lateness.append(max(0.0, sent - due))
        if inside(sent):
            stats.sent += 1
        headers = {"HX-Request": "true", "HX-Target": region.id, "HX-Trigger": region.id,
                   "HX-Current-URL": region.page_url}
        status, body, problem = 0, b"", None
        try:
            async with session.get(base + region.url, headers=headers, allow_redirects=False) as answer:
                status = answer.status
                body = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as failure:
            problem = f"{type(failure).__name__}: {failure}"
        done = wall()
        region.busy = False
        if inside(done):  # the answers received while measuring, whenever asked
            if problem is None and status in (200, 204):
                stats.latency[region.label].append((done - sent) * 1000)
                stats.status[region.label][status] += 1
            else:
                stats.status[region.label]["error"] += 1
                if len(stats.errors) < 10:
                    stats.errors.append(f"{region.label}: {problem or f'HTTP {status}'}")
        if inside(done) and problem is None and status in (200, 204):
            stats.delivered += 1
        if status == 200 and region.label != "floor /queue/panel/":
            # htmx swaps the element: the new one's hx-get and trigger, a new timer.
            found = region_in(body, region.id)
            if found is False:
                stats.swaps_without_region += 1
            else:
                region.queued_since = None
                if region.timer is not None:
                    region.timer.cancel()
                if found is None:
                    region.stopped = True
                    return
                _, region.url, region.every = found
                region.timer = asyncio.ensure_future(timer(session, region, done + region.every))
                return
        if region.queued_since is not None:
            queued, region.queued_since = region.queued_since, None
            spawn(send(session, region, queued))

    async def timer(session, region: Region, first: float) -> None:  # noqa: ANN001
        due = first
        while due < window_end:
            await asyncio.sleep(max(0.0, due - wall()))
            if inside(due):
                stats.demanded += 1
            if region.busy:
                if region.queued_since is None:
                    region.queued_since = due
            else:
                spawn(send(session, region, due))
            due += region.every  # htmx sets the next timer as this one fires

    async def lag_meter() -> None:
        while wall() < window_end:
            expected = wall() + 0.1
            await asyncio.sleep(0.1)
            if inside(expected):
                stats.loop_lag.append(max(0.0, wall() - expected) * 1000)

    regions_all = []
    for _browser, regions, session in loaded:
        for region in regions:
            region.timer = asyncio.ensure_future(
                timer(region.session or session, region, start + rng.uniform(0, region.every))
            )
            regions_all.append(region)
    meter = asyncio.ensure_future(lag_meter())
    cpu0 = cpu1 = None
    await asyncio.sleep(max(0.0, window_start - wall()))
    cpu0 = time.process_time()
    await asyncio.sleep(max(0.0, window_end - wall()))
    cpu1 = time.process_time()
    # Demand still waiting at the end: late by at least its wait so far.
    in_flight = sum(1 for r in regions_all if r.busy)
    for region in regions_all:
        if region.queued_since is not None and inside(region.queued_since):
            stats.lateness.append(window_end - region.queued_since)
    for region in regions_all:
        if region.timer is not None:
            region.timer.cancel()
    meter.cancel()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for session in sessions:
        await session.close()
    return {
        "latency": dict(stats.latency), "status": {k: dict(v) for k, v in stats.status.items()},
        "lateness": stats.lateness, "demanded": stats.demanded, "sent": stats.sent, "delivered": stats.delivered,
        "errors": stats.errors, "loop_lag": stats.loop_lag, "in_flight": in_flight,
        "cpu": (cpu1 or 0) - (cpu0 or 0), "swaps_without_region": stats.swaps_without_region,
        "stopped": sum(1 for r in regions_all if r.stopped),
    }


# =========================================================================== the world around

def populate_emulator(emu, account) -> dict:  # noqa: ANN001
    """The emulator's account as kfadmin's database has it: agents, waiting customers
    (in arrival order), open sessions."""
    from accounts.models import Agent
    from kfadmin.emulator import api
    from sessions_app.models import KfSession

    agents = list(Agent.objects.filter(official_account=account).order_by("kf_account"))
    # WeChat allows 100 kf accounts per official account; the emulator says so too.
    # Here one account holds them all: the worst case for the account-wide regions.
    api.MAX_ACCOUNTS = max(api.MAX_ACCOUNTS, len(agents))
    emu.add_official_account(appid=APPID, secret=APP_SECRET, wechat_id=WECHAT_ID)
    for agent in agents:
        emu.add_agent(appid=APPID, kf_account=agent.kf_account, nickname=agent.kf_nick, kf_wx=agent.kf_wx,
                      online=agent.online_status > 0)
    sessions = KfSession.objects.filter(official_account=account).select_related("customer", "agent")
    waiting = list(sessions.filter(state=KfSession.State.WAITING).order_by("created_at", "id"))
    for session in waiting:
        emu.customer_writes(appid=APPID, openid=session.customer.openid, text="在吗？")
    open_sessions: dict[str, list[str]] = defaultdict(list)
    for session in sessions.filter(state=KfSession.State.OPEN).order_by("id"):
        openid = session.customer.openid
        emu.customer_writes(appid=APPID, openid=openid, text="你好，我的订单还没到")
        emu.agent_accept(appid=APPID, kf_account=session.agent.kf_account, openid=openid)
        open_sessions[session.agent.kf_account].append(openid)
    return {"agents": [a.kf_account for a in agents], "waiting": len(waiting), "open": open_sessions}


class Customers(threading.Thread):
    """Customers writing while the browsers poll: each open session's customer about
    `writes_per_minute` times a minute, `arrivals_per_minute` newcomers joining the
    queue, and as many taken by a random agent a second later (the queue stays as long)."""

    def __init__(self, emu, world: dict, *, writes_per_minute: float, arrivals_per_minute: float, seed: int) -> None:  # noqa: ANN001
        super().__init__(name="customers", daemon=True)
        self.emu, self.world = emu, world
        self.writes, self.arrivals = writes_per_minute, arrivals_per_minute
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.counts = Counter()

    def run(self) -> None:
        from bench.search import random_openid
        from kfadmin.emulator.errors import ApiError, ControlError

        chatting = [o for openids in self.world["open"].values() for o in openids]
        agents = self.world["agents"]
        owed_writes = owed_arrivals = 0.0
        arrived: list[str] = []
        while not self.stop.wait(1.0):
            for _ in range(len(arrived)):
                try:
                    taken = self.emu.agent_accept(appid=APPID, kf_account=self.rng.choice(agents))
                except (ApiError, ControlError):
                    continue
                chatting.append(taken["openid"])
                self.counts["accepted"] += 1
            arrived = []
            owed_writes += len(chatting) * self.writes / 60
            owed_arrivals += self.arrivals / 60
            while owed_writes >= 1:
                owed_writes -= 1
                self.emu.customer_writes(appid=APPID, openid=self.rng.choice(chatting),
                                         text=f"请问进度怎么样了 {self.rng.randrange(10**6)}")
                self.counts["written"] += 1
            while owed_arrivals >= 1:
                owed_arrivals -= 1
                openid = random_openid(self.rng)
                self.emu.customer_writes(appid=APPID, openid=openid, text="你好，想咨询退款")
                arrived.append(openid)
                self.counts["arrived"] += 1


def _process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(_children(current))
    return out


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    """py-spy sampling one gunicorn worker (its busy threads) for `seconds`."""
    exe = shutil.which("py-spy")
    if exe is None:
        print("--profile: py-spy is not installed (scripts/uv run --with py-spy python bench/polling.py ...)")
        return None
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "20",
         "--format", "raw", "--output", str(out), "--nonblocking", "--full-filenames"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


PROJECT_FILE = " [project]"


def _frame(frame: str) -> str:
    """`function (path:line)` -> `function (short path)`, marked when it is the project's."""
    found = re.fullmatch(r"(.*) \((.*?)(?::\d+)?\)", frame)
    if not found:
        return frame
    function, path = found.groups()
    ours = path.startswith(str(ROOT)) and "site-packages" not in path
    if ours:
        return f"{function} ({Path(path).relative_to(ROOT)}){PROJECT_FILE}"
    return f"{function} ({path.rpartition('site-packages/')[2] if 'site-packages/' in path else Path(path).name})"


def print_profile(raw: Path, shown: int = 14) -> None:
    """Where the sampled worker's busy time went: the innermost functions, and the
    functions of the project and of Django (time including what they call)."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            if frame.endswith(PROJECT_FILE):
                inclusive[frame.removesuffix(PROJECT_FILE)] += samples
    if not total:
        print("profile: no samples")
        return
    print(f"profile of one gunicorn worker: {total:,} busy samples; innermost functions:")
    for frame, samples in own.most_common(shown):
        print(f"  {samples / total:6.1%}  {frame.removesuffix(PROJECT_FILE)[-110:]}")
    print("the project's functions, with what they call:")
    for frame, samples in inclusive.most_common(shown * 2):
        print(f"  {samples / total:6.1%}  {frame[-110:]}")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# =========================================================================== one size

def environment(args, database_url: str) -> dict[str, str]:  # noqa: ANN001
    return {
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": BENCH_SECRET_KEY,
        "FIELD_ENCRYPTION_KEY": BENCH_FIELD_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "CACHE_URL": args.redis_url,
        "CELERY_BROKER_URL": args.redis_url,
        # Plain HTTP on the loopback (as behind a TLS proxy): cookies without Secure.
        "SECURE_COOKIES": "false",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "kfadmin.settings",
    }


def prepare(args, agents: int) -> str:  # noqa: ANN001
    """Set Django up on this size's database, building it unless reused."""
    import psycopg

    database = f"{args.database}_{agents}"
    database_url = f"{args.server}/{database}"
    os.environ.update(environment(args, database_url))
    with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        fresh = not (args.reuse and exists)
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')
    import warnings

    import django

    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if fresh:
        print(f"building {database}: {agents} agents, {args.records:,} records ...", flush=True)
        began = time.perf_counter()
        data = argparse.Namespace(
            seed=args.seed, agents=agents, capacity=15, waiting=args.waiting,
            open_sessions=agents * args.sessions_per_agent, records=args.records,
            closed_sessions=args.records // 10, customers=max(args.customers, 2 * (agents * args.sessions_per_agent
                                                                                   + args.waiting)),
        )
        build(data, online_share=1.0, supervisors=supervisors_for(agents))
        print(f"built in {time.perf_counter() - began:.0f} s", flush=True)
    return database_url


def supervisors_for(agents: int) -> int:
    return max(2, agents // 50)


def browsers(account, world: dict, cookies: dict[str, str], rng: random.Random) -> list[dict]:  # noqa: ANN001
    """Every agent: the queue page and one of their conversations; every supervisor: the
    overview and the board (every other one with an agent picked) and the floor."""
    from accounts.models import Agent, Membership

    out = []
    members = Membership.objects.filter(official_account=account).select_related("user", "agent")
    agent_ids = list(Agent.objects.filter(official_account=account).values_list("pk", flat=True))
    n = 0
    for member in members.order_by("user__username"):
        name = member.user.username
        if name not in cookies:
            continue
        if member.role == Membership.Role.AGENT:
            chats = world["open"].get(member.agent.kf_account)
            pages = [{"label": "queue", "url": "/queue/"}]
            if chats:
                pages.append({"label": "conversation", "url": f"/conversations/{quote(chats[0])}/"})
            out.append({"name": name, "role": "agent", "session": cookies[name], "pages": pages})
        else:
            n += 1
            board = {"label": "board", "url": "/queue/"}
            if n % 2 == 0:
                board = {"label": "board ?agent", "url": f"/queue/?agent={rng.choice(agent_ids)}"}
            out.append({"name": name, "role": "supervisor", "session": cookies[name], "floor": True,
                        "pages": [{"label": "overview", "url": "/"}, board]})
    return out


def log_in(usernames: list[str]) -> dict[str, str]:
    """A session for each user holding what Django's login stores (the user, the
    project's backend, the password hash's digest), written in one INSERT: a login
    through the form hashes the password, a quarter of a second each here."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    store = SessionStore()
    expires = timezone.now() + timedelta(seconds=store.get_session_cookie_age())
    cookies, rows = {}, []
    for user in get_user_model().objects.filter(username__in=usernames):
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        data = {SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "accounts.backends.KfAdminBackend",
                HASH_SESSION_KEY: user.get_session_auth_hash()}
        rows.append(Session(session_key=key, session_data=store.encode(data), expire_date=expires))
        cookies[user.username] = key
    Session.objects.bulk_create(rows)
    return cookies


def run_size(args, agents: int) -> dict:  # noqa: ANN001
    database_url = prepare(args, agents)
    import redis
    from django.db import connection

    from accounts.models import Membership, OfficialAccount, SyncState
    from kfadmin.emulator import Emulator
    from kfadmin.emulator.server import serve_in_thread

    redis.Redis.from_url(args.redis_url).flushdb()
    account = OfficialAccount.objects.get(appid=APPID)
    emu = Emulator()
    handle = serve_in_thread(emu, host="127.0.0.1", port=0)
    began = time.perf_counter()
    world = populate_emulator(emu, account)
    OfficialAccount.objects.filter(pk=account.pk).update(api_base_url=handle.base_url, access_token="",
                                                         access_token_expires_at=None)
    # The builder's second account has no WeChat behind it here: the syncs leave it alone.
    OfficialAccount.objects.exclude(pk=account.pk).update(is_active=False)
    # Claims of a run that ended with the last benchmark are nobody's.
    SyncState.objects.filter(official_account=account).update(running_since=None, running_token="",
                                                               lease_until=None, paused_until=None)
    opened = sum(len(v) for v in world["open"].values())
    print(f"emulator: {len(world['agents'])} agents online, {world['waiting']} waiting, {opened} open sessions "
          f"({time.perf_counter() - began:.1f} s)", flush=True)
    usernames = list(Membership.objects.filter(official_account=account, role__in=[
        Membership.Role.AGENT, Membership.Role.SUPERVISOR]).values_list("user__username", flat=True))
    cookies = log_in(usernames)
    from django.conf import settings

    plan = browsers(account, world, cookies, random.Random(args.seed))
    connection.close()

    tmp = tempfile.TemporaryDirectory(prefix="kfadmin-bench-polling-")
    access_log = Path(tmp.name) / "access.log"
    env = {**os.environ, **environment(args, database_url)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    port = free_port()
    logs = open(Path(tmp.name) / "processes.log", "wb")  # noqa: SIM115
    worker = gunicorn = None
    customers = None
    clients: list = []
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "kfadmin", "worker", "--beat", "--queues", "celery,sync,send",
             "--concurrency", "2", "--loglevel", "WARNING", "-s", str(Path(tmp.name) / "beat-schedule")],
            cwd=ROOT, env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
        )
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
             "--access-logfile", str(access_log), "--access-logformat", ACCESS_FORMAT],
            cwd=ROOT, env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_until_up(gunicorn, port)
        customers = Customers(emu, world, writes_per_minute=args.writes_per_minute,
                              arrivals_per_minute=agents / 10, seed=args.seed)
        customers.start()

        context = multiprocessing.get_context("spawn")
        shares = [plan[i::args.client_processes] for i in range(args.client_processes)]
        for i, share in enumerate(shares):
            parent, child = context.Pipe()
            spec = {"host": "127.0.0.1", "port": port, "browsers": share, "seed": args.seed + i,
                    "warmup": args.warmup, "seconds": args.seconds, "timeout": args.timeout,
                    "cookie_name": settings.SESSION_COOKIE_NAME}
            process = context.Process(target=client_main, args=(spec, child), daemon=True)
            process.start()
            clients.append((process, parent))
        loaded_regions, load_seconds = 0, 0.0
        for _process, parent in clients:
            message = parent.recv()
            if "error" in message:
                raise SystemExit(f"a client process failed: {message['error']}")
            loaded_regions += message["regions"]
            load_seconds = max(load_seconds, message["seconds"])
        print(f"{len(plan)} browsers ({agents} agents, {supervisors_for(agents)} supervisors) loaded their pages in "
              f"{load_seconds:.0f} s: {loaded_regions} live regions; polling {args.warmup:g} s, then measuring "
              f"{args.seconds:g} s", flush=True)
        start = time.time() + 1.0
        for _, parent in clients:
            parent.send(start)
        time.sleep(max(0.0, start + args.warmup - time.time()))
        web = _tree(gunicorn.pid)
        jobs = _tree(worker.pid)
        profiler = None
        if args.profile:
            workers = _children(gunicorn.pid)
            if workers:
                profiler = start_profile(workers[0], args.seconds, Path(tmp.name) / "profile.txt")
        log_from = access_log.stat().st_size
        busy0, total0 = _cpu_ticks()
        web0, jobs0 = _process_cpu(web), _process_cpu(jobs)
        load_before = os.getloadavg()
        counts0 = Counter(customers.counts)
        time.sleep(max(0.0, start + args.warmup + args.seconds - time.time()))
        log_to = access_log.stat().st_size
        busy1, total1 = _cpu_ticks()
        web1, jobs1 = _process_cpu(web), _process_cpu(jobs)
        load_after = os.getloadavg()
        counts1 = Counter(customers.counts)
        results = []
        for process, parent in clients:
            message = parent.recv()
            if "error" in message:
                raise SystemExit(f"a client process failed: {message['error']}")
            results.append(message)
            process.join(timeout=10)
        with access_log.open("rb") as log:
            log.seek(log_from)
            lines = log.read(log_to - log_from).decode(errors="replace").splitlines()
        cores = os.cpu_count() or 1
        machine = {
            "cpu": (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0,
            "web_cpu": (web1 - web0) / args.seconds / cores,
            "web_cpu_seconds": web1 - web0,
            "jobs_cpu": (jobs1 - jobs0) / args.seconds / cores,
            "load": (load_before[0], load_after[0]),
            "cores": cores,
        }
        activity = {k: counts1[k] - counts0[k] for k in ("written", "arrived", "accepted")}
        summary = summarize(args, agents, results, lines, machine, activity)
        if profiler is not None:
            try:
                profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:  # behind in sampling on a busy machine: stop it, it writes
                profiler.send_signal(signal.SIGINT)
                try:
                    profiler.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    profiler.kill()
                    profiler.wait()
            if (Path(tmp.name) / "profile.txt").exists():
                print_profile(Path(tmp.name) / "profile.txt")
        return summary
    finally:
        if customers is not None:
            customers.stop.set()
        for process, _ in clients:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        stop_gunicorn(gunicorn)
        stop_gunicorn(worker)  # SIGTERM (a warm shutdown), then the whole group
        handle.shutdown()
        logs.close()
        if args.verbose:
            print((Path(tmp.name) / "processes.log").read_text(errors="replace")[-6000:])
        tmp.cleanup()
        connection.close()


def summarize(args, agents: int, results: list[dict], log_lines: list[str], machine: dict,  # noqa: ANN001
              activity: dict) -> dict:
    latency: dict[str, list[float]] = defaultdict(list)
    status: dict[str, Counter] = defaultdict(Counter)
    lateness, loop_lag, errors = [], [], []
    demanded = sent = delivered = in_flight = stopped = unswapped = 0
    cpu = 0.0
    for r in results:
        for label, values in r["latency"].items():
            latency[label] += values
        for label, counts in r["status"].items():
            status[label].update(counts)
        lateness += r["lateness"]
        loop_lag += r["loop_lag"]
        errors += r["errors"]
        demanded += r["demanded"]
        delivered += r["delivered"]
        sent += r["sent"]
        in_flight += r["in_flight"]
        cpu += r["cpu"]
        stopped += r["stopped"]
        unswapped += r["swaps_without_region"]
    floor_label = "floor /queue/panel/"
    floor_answers = sum(status[floor_label].values())
    # The floor's requests are not the pages' demand.
    demanded_rate = demanded / args.seconds - supervisors_for(agents) / FLOOR_SECONDS
    delivered_rate = (delivered - floor_answers) / args.seconds
    # Server time from gunicorn's access log: path, target, status, microseconds.
    server: dict[str, list[float]] = defaultdict(list)
    logged = 0
    for line in log_lines:
        logged += 1
        parts = line.split()
        if len(parts) != 4 or not parts[3].isdigit():
            continue
        path, target, code, micros = parts
        if code in ("200", "204") and target != "-":
            server["floor" if target == FLOOR_ID else "poll"].append(int(micros) / 1000)
    polls = [v for label, values in latency.items() if label != floor_label for v in values]
    answers = sum(sum(c.values()) for label, c in status.items() if label != floor_label)
    mean_poll = statistics.mean(server["poll"]) if server["poll"] else float("nan")
    mean_floor = statistics.mean(server["floor"]) if server["floor"] else float("nan")
    cpu_per_request = cpu / sent * 1000 if sent else float("nan")
    summary = {
        "agents": agents, "supervisors": supervisors_for(agents), "seconds": args.seconds,
        "demanded": demanded_rate, "delivered": delivered_rate,
        "delivered_ratio": delivered_rate / demanded_rate if demanded_rate else 0.0,
        "late_p50": pct(lateness, 0.5), "late_p95": pct(lateness, 0.95), "late_max": max(lateness, default=0.0),
        "p50": pct(polls, 0.5), "p95": pct(polls, 0.95), "p99": pct(polls, 0.99),
        "share_200": sum(c[200] for label, c in status.items() if label != floor_label) / answers if answers else 0,
        "share_204": sum(c[204] for label, c in status.items() if label != floor_label) / answers if answers else 0,
        "errors": sum(c["error"] for c in status.values()),
        "server_poll_ms": mean_poll, "server_floor_ms": mean_floor,
        "floor_ratio": mean_poll / mean_floor if mean_floor else float("nan"),
        "web_cpu_ms": machine["web_cpu_seconds"] * 1000 / logged if logged else float("nan"),
        "client_cpu_ms": cpu_per_request,
        "client_capacity": args.client_processes * 1000 / cpu_per_request if cpu_per_request else float("nan"),
        "client_cpu_share": cpu / args.seconds / machine["cores"],
        "loop_lag_p95": pct(loop_lag, 0.95), "loop_lag_max": max(loop_lag, default=0.0),
        **machine, "activity": activity, "in_flight": in_flight,
    }

    print()
    print(f"=== {agents} agents online, {summary['supervisors']} supervisors; {args.seconds:g} s measured; "
          f"load average {machine['load'][0]:.2f} -> {machine['load'][1]:.2f} ({machine['cores']} cores)")
    print(f"customers meanwhile: {activity['written']} messages in open sessions, {activity['arrived']} newcomers "
          f"queued, {activity['accepted']} taken by agents")
    print(f"{'region':<44} {'answers':>7} {'req/s':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'200':>5} {'204':>5} {'errors':>6}")
    for label in sorted(latency.keys() | status.keys()):
        values, counts = latency[label], status[label]
        total = sum(counts.values())
        print(f"{label:<44} {total:>7,} {total / args.seconds:>6.1f} {pct(values, .5):>7.1f} {pct(values, .95):>7.1f} "
              f"{pct(values, .99):>7.1f} {counts[200] / total if total else 0:>5.0%} "
              f"{counts[204] / total if total else 0:>5.0%} {counts['error']:>6}")
    print(f"{'all polls':<44} {answers:>7,} {answers / args.seconds:>6.1f} {summary['p50']:>7.1f} "
          f"{summary['p95']:>7.1f} {summary['p99']:>7.1f} {summary['share_200']:>5.0%} {summary['share_204']:>5.0%}")
    verdicts = {
        "delivered": summary["delivered_ratio"] >= DELIVERED_TARGET,
        "p95": summary["p95"] <= P95_TARGET_MS,
        "p99": summary["p99"] <= P99_TARGET_MS,
        "server": summary["floor_ratio"] <= FLOOR_RATIO_TARGET,
    }
    summary["verdicts"] = verdicts

    def mark(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    print(f"demanded {demanded_rate:,.1f} req/s, delivered {delivered_rate:,.1f} req/s "
          f"(x{summary['delivered_ratio']:.2f}; target >= {DELIVERED_TARGET}) {mark(verdicts['delivered'])}; "
          f"{in_flight} requests out at the end")
    print(f"lateness (sent - timer): p50 {summary['late_p50'] * 1000:,.0f} ms, p95 {summary['late_p95'] * 1000:,.0f} ms, "
          f"max {summary['late_max']:,.1f} s")
    print(f"latency over all polls: p95 {summary['p95']:.1f} ms (target <= {P95_TARGET_MS:g}) {mark(verdicts['p95'])}, "
          f"p99 {summary['p99']:.1f} ms (target <= {P99_TARGET_MS:g}) {mark(verdicts['p99'])}")
    print(f"server time (gunicorn's log): {mean_poll:.1f} ms per poll ({len(server['poll']):,}), the floor "
          f"{mean_floor:.1f} ms ({len(server['floor']):,}): x{summary['floor_ratio']:.2f} "
          f"(target <= {FLOOR_RATIO_TARGET:g}) {mark(verdicts['server'])}")
    print(f"gunicorn's CPU per request answered: {summary['web_cpu_ms']:.1f} ms ({logged:,} requests)")
    print(f"CPU: machine {machine['cpu']:.0%} busy; gunicorn {machine['web_cpu']:.0%}, Celery "
          f"{machine['jobs_cpu']:.0%}, the clients {summary['client_cpu_share']:.0%} of all cores")
    print(f"client: {cpu_per_request:.2f} ms CPU per request -> about {summary['client_capacity']:,.0f} req/s with "
          f"{args.client_processes} process(es) on cores of their own; event loop lag p95 "
          f"{summary['loop_lag_p95']:.1f} ms, max {summary['loop_lag_max']:.0f} ms")
    if stopped or unswapped:
        print(f"regions that stopped polling: {stopped}; 200s without the region: {unswapped}")
    for sample in errors[:5]:
        print(f"  error: {sample}")
    return summary


# =========================================================================== main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[100, 200, 1000], help="online agents (sizes)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring time per size (default 60)")
    parser.add_argument("--warmup", type=float, default=15.0, help="polling before measuring (default 15 s)")
    parser.add_argument("--records", type=int, default=500_000, help="archived records (default 500,000)")
    parser.add_argument("--sessions-per-agent", type=int, default=3)
    parser.add_argument("--waiting", type=int, default=50, help="customers waiting in the queue")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--writes-per-minute", type=float, default=1.0,
                        help="messages a minute from each open session's customer (default 1)")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0, help="a poll's timeout in the client (s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/2",
                        help="cache and Celery broker (emptied at the start of each size)")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--database", default="kfadmin_bench_polling", help="prefix; _<agents> is added")
    parser.add_argument("--reuse", action="store_true", help="reuse each size's database when it exists")
    parser.add_argument("--drop", action="store_true", help="drop each size's database at the end")
    parser.add_argument("--profile", action="store_true",
                        help="sample one gunicorn worker with py-spy while measuring (needs py-spy on PATH)")
    parser.add_argument("--summary-json", help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="print the tail of gunicorn's and Celery's log")
    args = parser.parse_args()
    if not args.database.startswith("kfadmin_bench"):
        parser.error("the database name must start with kfadmin_bench (it is dropped)")

    if len(args.agents) > 1:
        # One process per size: each sets Django up on its own database.
        summaries = []
        for agents in args.agents:
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                argv = [a for a in sys.argv[1:]]
                cut = argv.index("--agents") if "--agents" in argv else None
                if cut is not None:
                    end = cut + 1
                    while end < len(argv) and not argv[end].startswith("--"):
                        end += 1
                    argv[cut:end] = []
                code = subprocess.call([sys.executable, __file__, *argv, "--agents", str(agents),
                                        "--summary-json", out.name])
                if code == 0:
                    summaries.append(json.loads(Path(out.name).read_text()))
        table(summaries)
        sys.exit(0 if len(summaries) == len(args.agents) else 1)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the finally blocks stop what was started
    agents = args.agents[0]
    try:
        summary = run_size(args, agents)
    finally:
        if args.drop:
            import psycopg

            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}_{agents}" WITH (FORCE)')
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary))
    else:
        table([summary])


def table(summaries: list[dict]) -> None:
    if not summaries:
        return
    print()
    print(f"{'agents':>6} {'load':>10} {'demanded/s':>10} {'delivered/s':>11} {'ratio':>5} {'late p95':>9} "
          f"{'late max':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'200':>4} {'204':>4} {'poll ms':>7} "
          f"{'floor ms':>8} {'xfloor':>6} {'client cap/s':>12}")
    for s in summaries:
        print(f"{s['agents']:>6} {s['load'][0]:>4.1f}-{s['load'][1]:<5.1f} {s['demanded']:>10.1f} "
              f"{s['delivered']:>11.1f} {s['delivered_ratio']:>5.2f} {s['late_p95']:>8.1f}s {s['late_max']:>7.1f}s "
              f"{s['p50']:>7.1f} {s['p95']:>7.1f} {s['p99']:>7.1f} {s['share_200']:>4.0%} {s['share_204']:>4.0%} "
              f"{s['server_poll_ms']:>7.1f} {s['server_floor_ms']:>8.1f} {s['floor_ratio']:>6.2f} "
              f"{s['client_capacity']:>12,.0f}")
    print(f"targets at 1000 agents: delivered >= {DELIVERED_TARGET} x demanded, p95 <= {P95_TARGET_MS:g} ms, "
          f"p99 <= {P99_TARGET_MS:g} ms, server time per poll <= {FLOOR_RATIO_TARGET:g} x the floor")


if __name__ == "__main__":
    main()

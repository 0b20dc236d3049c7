"""An hour of a supervisor's day against `make run`, to see that it stays up.

Against the demo that `make run` starts (kfadmin on 127.0.0.1:8000, the emulator on
127.0.0.1:8765), for --minutes N:

- every ~5 s one of a pool of soak customers writes (the emulator's `customer_writes`);
- every ~10 s the supervisor sends a text through the conversation page's composer
  form, as htmx posts it, to a customer whose reply window is open;
- every ~60 s it assigns a waiting customer, every ~90 s it closes a session, both
  through the queue page's action panel;
- meanwhile it polls what the supervisor has open at the templates' intervals: the
  overview (5 s), the queue's two lists (5 s), the conversation's timeline (10 s) and
  session box (30 s), and each of its sends while queued (1 s).

Every minute it prints one line: requests by status, each process alive and its RSS,
the soak's sends by kfadmin status, and how many times the emulator recorded each send
(duplicates must be 0). At the end a summary; the exit status is 1 when any request
answered 5xx, a process died, a send was duplicated or lost.

Only 127.0.0.1 is contacted. The database is read read-only (SQLite under var/).

    scripts/uv run python bench/soak.py --minutes 60 [--dir PATH_OF_THE_CLONE]
"""

from __future__ import annotations

import argparse
import collections
import html.parser
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

WEB = "http://127.0.0.1:8000"
EMU = "http://127.0.0.1:8765/__emulator__"
TIMEOUT = 30
SETTLE_SECONDS = 90  # after the last send, how long queued sends may take to finish

# What `ps` shows for each process `make run` starts (the Procfile's commands).
ROLES = {
    "web": "manage.py runserver 127.0.0.1:8000",
    "worker": "celery -A kfadmin worker",
    "emulator": "-m kfadmin.emulator",
}


class Forms(html.parser.HTMLParser):
    """Each <form>'s action and the fields a browser would submit (first option when none is selected)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: str | None = None
        self._select_first: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"action": a.get("action", ""), "fields": {}}
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name") and a.get("type", "text") not in ("submit", "button", "checkbox", "radio"):
            self._form["fields"][a["name"]] = a.get("value", "")
        elif tag == "select" and a.get("name"):
            self._select, self._select_first = a["name"], None
            self._form["fields"].setdefault(a["name"], "")
        elif tag == "option" and self._select:
            # A browser user picks a real choice, not the "---------" placeholder.
            if self._select_first is None and a.get("value"):
                self._select_first = a["value"]
                if not self._form["fields"].get(self._select):
                    self._form["fields"][self._select] = self._select_first
            if "selected" in a:
                self._form["fields"][self._select] = a.get("value", "")
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self._form["fields"][a["name"]] = ""

    def handle_data(self, data):
        if self._textarea and self._form is not None:
            self._form["fields"][self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_for(page: str, action_part: str) -> dict | None:
    parser = Forms()
    parser.feed(page)
    for form in parser.forms:
        if action_part in form["action"]:
            return form
    return None


class Soak:
    def __init__(self, args) -> None:
        self.args = args
        self.dir = Path(args.dir).resolve()
        self.run = uuid.uuid4().hex[:6]
        self.rng = random.Random(args.seed)
        self.web = requests.Session()
        self.emu = requests.Session()
        self.status = collections.Counter()
        self.failures: list[str] = []
        self.customers = [f"oSoak{self.run}{i:02d}".ljust(28, "x") for i in range(args.customers)]
        self.budget: dict[str, int] = {}
        self.writes = 0
        self.sends: dict[str, dict] = {}  # content -> {"openid", "at", "posted"}
        self.refused = 0
        self.assigns = collections.Counter()
        self.closes = collections.Counter()
        self.received = collections.Counter()  # content -> times the emulator recorded it
        self.after_id = 0
        self.open_conversation: str | None = None
        self.stamp: str | None = None
        self.outbound_polls: set[str] = set()
        self.rss_first: dict[str, int] = {}
        self.rss_last: dict[str, int] = {}
        self.dead: set[str] = set()
        self.minutes: list[dict] = []

    # --- HTTP ------------------------------------------------------------------------
    def request(self, method: str, path: str, *, hx_target: str | None = None, **kw) -> requests.Response | None:
        headers = kw.pop("headers", {})
        if hx_target is not None:
            headers.update({"HX-Request": "true", "HX-Current-URL": WEB + (self.open_conversation_url() or "/")})
            if hx_target:
                headers["HX-Target"] = hx_target
        if method == "POST":
            headers.setdefault("Referer", WEB + path)
            headers["X-CSRFToken"] = self.web.cookies.get("csrftoken", "")
        try:
            r = self.web.request(method, WEB + path, headers=headers, timeout=TIMEOUT, allow_redirects=False, **kw)
        except requests.RequestException as exc:
            self.status[f"error {type(exc).__name__}"] += 1
            self.failures.append(f"{time.strftime('%H:%M:%S')} {method} {path}: {exc}")
            return None
        self.status[r.status_code] += 1
        if r.status_code >= 500:
            self.failures.append(f"{time.strftime('%H:%M:%S')} {method} {path}: HTTP {r.status_code}")
        return r

    def open_conversation_url(self) -> str | None:
        return f"/conversations/{self.open_conversation}/" if self.open_conversation else None

    def control(self, name: str, method: str = "POST", **payload) -> dict:
        try:
            if method == "GET":
                r = self.emu.get(f"{EMU}/{name}", params=payload, timeout=TIMEOUT)
            else:
                r = self.emu.post(f"{EMU}/{name}", data=json.dumps(payload), timeout=TIMEOUT)
            return r.json()
        except (requests.RequestException, ValueError) as exc:
            self.failures.append(f"{time.strftime('%H:%M:%S')} emulator {name}: {exc}")
            return {}

    def login(self) -> None:
        user, password = (part.strip() for part in (self.dir / ".local/demo_login").read_text().split(" / ", 1))
        page = self.request("GET", "/login/")
        form = form_for(page.text, "")
        form["fields"].update(username=user, password=password)
        r = self.request("POST", "/login/", data=form["fields"])
        if r is None or r.status_code != 302:
            sys.exit(f"login as {user} failed: {r and r.status_code}")

    # --- what the supervisor and customers do ------------------------------------------
    def customer_writes(self) -> None:
        openid = self.customers[self.writes % len(self.customers)]
        self.writes += 1
        answer = self.control("customer_writes", openid=openid, text=f"soak-cust {self.run} #{self.writes}")
        if answer.get("errcode") == 0:
            self.budget[openid] = int(answer.get("remaining", 5))
        else:
            self.failures.append(f"customer_writes {openid}: {answer}")

    def supervisor_sends(self) -> None:
        ready = [o for o in self.customers if self.budget.get(o, 0) > 0]
        if not ready:
            return
        openid = self.rng.choice(ready)
        self.open_conversation = openid
        url = f"/conversations/{openid}/"
        page = self.request("GET", url)
        if page is None or page.status_code != 200:
            return  # kfadmin has not seen this customer yet (404): next time
        self.stamp = None
        form = form_for(page.text, f"{url}send/")
        if form is None:
            self.failures.append(f"no composer on {url}")
            return
        content = f"soak {self.run} send #{len(self.sends) + 1}"
        form["fields"]["content"] = content
        r = self.request("POST", f"{url}send/", hx_target="composer", data=form["fields"])
        self.budget[openid] -= 1
        if r is not None and r.status_code == 200 and not re.search(r'class="(form-errors|errorlist)', r.text):
            self.sends[content] = {"openid": openid, "at": time.time()}
            self.poll_timeline()
        else:
            self.refused += 1
            reason = re.search(r'class="(?:form-errors|errorlist)[^>]*>(.*?)</(?:div|ul)>', r.text, re.S) if r is not None else None
            self.failures.append(f"send to {openid} refused: {reason and re.sub('<[^>]+>', ' ', reason.group(1)).strip()}")

    def assign_waiting(self) -> None:
        board = self.request("GET", "/queue/")
        if board is None:
            return
        links = re.findall(r'href="(/customers/[^"/]+/assign/\?next=[^"]*)"', board.text)
        if not links:
            self.assigns["nobody waiting"] += 1
            return
        self.act(self.rng.choice(links).replace("&amp;", "&"), "/assign/", self.assigns)

    def close_session(self) -> None:
        board = self.request("GET", "/queue/")
        if board is None:
            return
        links = re.findall(r'href="(/sessions/\d+/close/\?next=[^"]*)"', board.text)
        if not links:
            self.closes["no session"] += 1
            return
        self.act(self.rng.choice(links).replace("&amp;", "&"), "/close/", self.closes)

    def act(self, link: str, action_part: str, tally: collections.Counter) -> None:
        panel = self.request("GET", link, hx_target="action-panel")
        form = panel is not None and form_for(panel.text, action_part)
        if not form:
            tally["no form"] += 1
            return
        agents = re.findall(r'<option value="(\d+)"', panel.text)
        if "agent" in form["fields"] and agents:
            # A supervisor spreads customers over the agents (the first is soon at capacity).
            form["fields"]["agent"] = self.rng.choice(agents)
        r = self.request("POST", form["action"], hx_target="action-panel", data=form["fields"])
        if r is not None and 'name="confirm"' in r.text:
            tally["confirmed a warning"] += 1  # e.g. the agent is at capacity: "Assign anyway"
            form = form_for(r.text, action_part)
            r = form and self.request("POST", form["action"], hx_target="action-panel", data=form["fields"])
        if r is None:
            tally["no answer"] += 1
        elif 'role="alert"' in r.text:
            tally["refused"] += 1
        else:
            tally["done"] += 1

    # --- polling what is open ---------------------------------------------------------
    def poll_overview(self) -> None:
        self.request("GET", "/", hx_target="overview", headers={"HX-Trigger": "overview"})

    def poll_queue(self) -> None:
        for target in ("queue-waiting", "open-sessions"):
            self.request("GET", "/queue/", hx_target=target, headers={"HX-Trigger": target})

    def poll_timeline(self) -> None:
        url = self.open_conversation_url()
        if not url:
            return
        params = {"stamp": self.stamp} if self.stamp else {}
        r = self.request("GET", url, hx_target="timeline", params=params, headers={"HX-Trigger": "timeline"})
        if r is not None and r.status_code == 200 and r.text.strip():
            found = re.search(r'hx-get="[^"]*\?stamp=([^"]+)"', r.text)
            if found:
                self.stamp = requests.utils.unquote(found.group(1).replace("&amp;", "&"))
            self.outbound_polls |= set(re.findall(r'hx-get="(/outbound/\d+/)" hx-trigger="every 1s"', r.text))

    def poll_session_box(self) -> None:
        url = self.open_conversation_url()
        if url:
            self.request("GET", url, hx_target="conversation-session", headers={"HX-Trigger": "conversation-session"})

    def poll_outbound(self) -> None:
        for path in list(self.outbound_polls):
            r = self.request("GET", path, hx_target="", headers={"HX-Trigger": path})
            if r is None or 'hx-trigger="every 1s"' not in r.text:
                self.outbound_polls.discard(path)

    # --- measuring --------------------------------------------------------------------
    def processes(self) -> dict[str, tuple[int, int]]:
        """Role -> (process count, RSS in kB summed over its processes)."""
        out = subprocess.run(["ps", "-eo", "pid=,rss=,args="], capture_output=True, text=True, check=False).stdout
        found: dict[str, tuple[int, int]] = {}
        for line in out.splitlines():
            pid, rss, cmd = line.split(None, 2)
            # Only this checkout's processes: tests elsewhere on the machine start Celery
            # workers too, and counting them would hide a dead worker and inflate its RSS.
            try:
                if Path(os.readlink(f"/proc/{pid}/cwd")) != self.dir:
                    continue
            except OSError:
                continue
            for role, needle in ROLES.items():
                if needle in cmd:
                    n, total = found.get(role, (0, 0))
                    found[role] = (n + 1, total + int(rss))
        return found

    def fetch_received(self) -> None:
        while True:
            page = self.control("records", method="GET", after_id=self.after_id, limit=1000, opercode=2002)
            rows = page.get("records", [])
            for row in rows:
                if row["text"].startswith(f"soak {self.run} send #"):
                    self.received[row["text"]] += 1
                self.after_id = max(self.after_id, row["id"])
            if len(rows) < 1000:
                return

    def db(self, sql: str, *params) -> list:
        path = self.dir / "var/kfadmin.sqlite3"
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=20)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def outbound_by_content(self) -> dict[str, str]:
        rows = self.db("select payload, status from messaging_outboundmessage where payload like ?", f"%soak {self.run} send #%")
        return {json.loads(payload).get("content", ""): status for payload, status in rows}

    def archived(self) -> tuple[int, int]:
        """(distinct soak customer messages in kfadmin's archive, rows holding them)."""
        return self.db(
            "select count(distinct text), count(*) from messaging_messagerecord where text like ? and opercode in (2001, 2003)",
            f"soak-cust {self.run} #%",
        )[0]

    def measure(self, minute: int) -> None:
        alive = {}
        try:
            alive["web"] = requests.get(WEB + "/healthz", timeout=TIMEOUT).status_code == 200
        except requests.RequestException:
            alive["web"] = False
        alive["emulator"] = self.control("health", method="GET").get("errcode") == 0
        procs = self.processes()
        alive["worker"] = "worker" in procs
        for role in ROLES:
            alive[role] = alive[role] and role in procs
            if not alive[role] and role not in self.dead:
                self.dead.add(role)
                self.failures.append(f"minute {minute}: {role} is not alive")
        rss = {role: procs.get(role, (0, 0))[1] for role in ROLES}
        if not self.rss_first:
            self.rss_first = dict(rss)
        self.rss_last = rss
        self.fetch_received()
        statuses = collections.Counter(self.outbound_by_content().values())
        archived, rows = self.archived()
        dup = sum(1 for n in self.received.values() if n > 1)
        line = {
            "minute": minute,
            "http": dict(sorted((str(k), v) for k, v in self.status.items())),
            "alive": alive,
            "procs": {role: procs.get(role, (0, 0))[0] for role in ROLES},
            "rss_mb": {role: round(kb / 1024, 1) for role, kb in rss.items()},
            "sends": len(self.sends),
            "outbound": dict(statuses),
            "received": len(self.received),
            "duplicated": dup,
            "writes": self.writes,
            "archived": archived,
            "archived_rows": rows,
        }
        self.minutes.append(line)
        print(json.dumps(line, ensure_ascii=False), flush=True)

    # --- the loop ---------------------------------------------------------------------
    def loop(self) -> int:
        self.login()
        jobs = [
            (5, self.customer_writes),
            (10, self.supervisor_sends),
            (60, self.assign_waiting),
            (90, self.close_session),
            (5, self.poll_overview),
            (5, self.poll_queue),
            (10, self.poll_timeline),
            (30, self.poll_session_box),
            (1, self.poll_outbound),
        ]
        start = time.time()
        due = [start + self.rng.uniform(0, min(every, 5)) for every, _ in jobs]
        end = start + self.args.minutes * 60
        next_minute, minute = start + 60, 0
        self.measure(0)
        while time.time() < end:
            now = time.time()
            for i, (every, job) in enumerate(jobs):
                if now >= due[i]:
                    due[i] = now + every * self.rng.uniform(0.9, 1.1)
                    job()
            if now >= next_minute:
                minute += 1
                next_minute += 60
                self.measure(minute)
            time.sleep(0.2)
        # Let the last sends finish, polling them as the page would.
        settle_end = time.time() + SETTLE_SECONDS
        while time.time() < settle_end:
            self.poll_outbound()
            if not any(s in ("queued", "sending") for s in self.outbound_by_content().values()):
                break
            time.sleep(1)
        time.sleep(2)
        self.measure(minute + 1)
        return self.summary(time.time() - start)

    def summary(self, seconds: float) -> int:
        outbound = self.outbound_by_content()
        delivered = [c for c in self.sends if self.received[c] >= 1]
        duplicated = {c: self.received[c] for c in self.sends if self.received[c] > 1}
        lost = [c for c in self.sends if self.received[c] == 0]
        archived, rows = self.archived()
        five = sum(v for k, v in self.status.items() if isinstance(k, int) and k >= 500)
        errors = sum(v for k, v in self.status.items() if not isinstance(k, int))
        print("\n=== soak summary ===")
        print(f"run id {self.run}; minutes up {seconds / 60:.1f}; processes dead: {sorted(self.dead) or 'none'}")
        print(f"requests by status: {dict(sorted((str(k), v) for k, v in self.status.items()))} (5xx: {five}, no answer: {errors})")
        print(
            f"sends made {len(self.sends)} (refused by the form {self.refused}); kfadmin status "
            f"{dict(collections.Counter(outbound.get(c, 'no row') for c in self.sends))}; delivered {len(delivered)}, "
            f"duplicated {len(duplicated)} {duplicated or ''}, lost {len(lost)}"
        )
        for content in lost[:20]:
            print(f"  lost: {content!r} to {self.sends[content]['openid']}, kfadmin status {outbound.get(content, 'no row')}")
        print(f"assign: {dict(self.assigns)}; close: {dict(self.closes)}")
        print(f"customer messages written {self.writes}, archived by kfadmin {archived} (rows {rows})")
        print(
            "RSS MB start -> end: "
            + ", ".join(
                f"{r} {self.rss_first.get(r, 0) / 1024:.1f} -> {self.rss_last.get(r, 0) / 1024:.1f}" for r in ROLES
            )
        )
        if self.failures:
            print(f"failures ({len(self.failures)}), first 30:")
            for f in self.failures[:30]:
                print(f"  {f}")
        bad = five or errors or self.dead or duplicated or lost
        return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--customers", type=int, default=12, help="size of the soak's customer pool")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--dir", default=str(Path(__file__).resolve().parent.parent), help="the checkout `make run` runs in")
    args = parser.parse_args()
    if not 0 < args.minutes <= 24 * 60:
        parser.error("--minutes must be between 0 and 1440")
    return Soak(args).loop()


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a 1,000,000-row history export for a slow client, and the first request
a gunicorn worker serves after a restart.

    scripts/uv run python bench/export.py                      # build 1 M records, export, download
    scripts/uv run python bench/export.py --reuse              # the kept data
    scripts/uv run python bench/export.py --reuse --old-stream 100000   # also the old way, for comparison
    scripts/uv run python bench/export.py --reuse --skip-export --restarts 5   # only the restart figures

1. Builds an archive of `--rows` records (1,111,112: a million in the measured account;
   bench/search.py's generator, binary COPY,
   indexes rebuilt after) in its own database (`kfadmin_bench_export`).
2. Runs the export job in this process (`export_job_run`, what the Celery task runs)
   and times it.
3. Starts gunicorn with the repository's gunicorn.conf.py (production settings: DEBUG
   off, a SECRET_KEY), logs a supervisor in through the login form, and downloads the
   prepared file reading at most `--rate` bytes a second (256 kB/s by default) with a
   small receive buffer; counts the rows received and compares them with the
   archive's count of the account. PASS when they are equal and the response ended
   properly (Content-Length bytes received).
4. `--old-stream N`: the way before, for comparison: `gunicorn kfadmin.wsgi -w 2`
   (sync workers, default 30 s timeout, no configuration file) streaming an export
   of N records from the request at the same rate. It was cut at 30 s.
5. `--restarts K`: for three set-ups (the old command; gunicorn.conf.py; the same
   without preload_app), one worker: the median of 20 requests to a logged-in page
   once warm, then K rounds of: kill the worker and time until its replacement
   answers /healthz (the restart's gap); kill it again, wait `--settle` seconds (the
   new worker has booted) and time its first request to that page. Prints the median
   first request / warm request ratio, all measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dashboard import (  # noqa: E402  (bench scripts import each other from this folder)
    BENCH_FIELD_KEY,
    BENCH_SECRET_KEY,
    PASSWORD,
    http,
    login,
    request_bytes,
)

APPID_MAIN = "wxbenchexport00001"
APPID_OTHER = "wxbenchexport00002"
USERNAME = "bench_export_boss"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(args: argparse.Namespace) -> None:
    import random

    from django.contrib.auth import get_user_model
    from django.db import connection
    from search import archive_rows, copy_into_archive, random_openid

    from accounts.models import Membership, OfficialAccount

    main = OfficialAccount.objects.create(name="bench export", appid=APPID_MAIN, secret="s", wechat_id="bench_oa")
    other = OfficialAccount.objects.create(name="other", appid=APPID_OTHER, secret="s", wechat_id="other_oa")
    user = get_user_model().objects.create_user(USERNAME, password=PASSWORD)
    Membership.objects.create(user=user, official_account=main, role=Membership.Role.SUPERVISOR)
    rng = random.Random(f"{args.seed}-customers")
    openids = [random_openid(rng) for _ in range(50_000)]
    agents = [f"kf{n:03d}@bench_oa" for n in range(1, 31)]
    rows = archive_rows(rows=args.rows, seed=args.seed, account_ids=(main.pk, other.pk), openids=openids,
                        workers=agents, end=int(time.time()))
    connection.ensure_connection()
    raw = connection.connection
    raw.autocommit = True
    copy_into_archive(raw, rows, args.rows)
    with raw.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) messaging_messagerecord")
    connection.close()  # Django's own idea of the connection's autocommit was bypassed above


def gunicorn_env(args: argparse.Namespace, **extra: str) -> dict[str, str]:
    env = {
        **os.environ, "DEBUG": "false", "SECRET_KEY": BENCH_SECRET_KEY, "FIELD_ENCRYPTION_KEY": BENCH_FIELD_KEY,
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_COOKIES": "false", "LOG_LEVEL": "WARNING",
        "EXPORT_ROOT": str(args.export_root), **extra,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def start(command: list[str], env: dict[str, str], log) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([*command, "-b", f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        try:
            if http("127.0.0.1", port, request_bytes("127.0.0.1", port, "GET", "/healthz"), timeout=5).status == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer /healthz within 90 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


NEW = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")]


def old_command(workers: int, empty_config: Path) -> list[str]:
    # The README's command before gunicorn.conf.py; an empty -c keeps gunicorn from
    # reading ./gunicorn.conf.py by itself.
    return [sys.executable, "-m", "gunicorn", "-c", str(empty_config), "kfadmin.wsgi", "--workers", str(workers)]


def slow_download(port: int, path: str, cookie: str, rate: int) -> tuple[int, bytes, dict[str, str], float, str]:
    """GET `path` reading at most `rate` bytes/s; (status, body, headers, seconds, how it ended)."""
    request = request_bytes("127.0.0.1", port, "GET", path, {"Cookie": cookie})
    began = time.monotonic()
    chunks: list[bytes] = []
    received = 0
    ended = "closed"
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        # A small receive buffer so the kernel cannot read far ahead of the client.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(request)
        step = 16384
        while True:
            try:
                data = sock.recv(step)
            except (ConnectionResetError, TimeoutError) as exc:
                ended = type(exc).__name__
                break
            if not data:
                break
            chunks.append(data)
            received += len(data)
            ahead = received / rate - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
    seconds = time.monotonic() - began
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, body, headers, seconds, ended


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """The chunked body's data, and whether the final zero-length chunk arrived."""
    out, pos = [], 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return b"".join(out), False
        size = int(body[pos:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return b"".join(out), True
        out.append(body[end + 2:end + 2 + size])
        pos = end + 2 + size + 2
        if pos > len(body):
            return b"".join(out), False


def archive_count(account_id: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM messaging_messagerecord WHERE official_account_id = %s", [account_id])
        return cursor.fetchone()[0]


def run_export(args: argparse.Namespace, account) -> None:
    from django.contrib.auth import get_user_model

    from messaging import services
    from messaging.selectors import RecordFilter

    user = get_user_model().objects.get(username=USERNAME)
    expected = archive_count(account.pk)
    print(f"archive: {expected:,} records in the account", flush=True)
    services.export_job_enqueue = lambda *, job_id: True  # run here, not through the broker
    job = services.export_job_create(account=account, actor=user, export_format="csv", filters=RecordFilter())
    began = time.perf_counter()
    job = services.export_job_run(job_id=job.pk)
    took = time.perf_counter() - began
    assert job is not None
    print(f"export job: {job.status}, {job.rows_written:,} rows, {job.size_bytes / 1e6:.1f} MB in {took:.1f} s "
          f"({job.rows_written / took:,.0f} rows/s)", flush=True)
    if job.status != "done":
        raise SystemExit(f"the export job failed: {job.error}")

    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        process, port = start([*NEW], gunicorn_env(args), log)
        try:
            cookie = login("127.0.0.1", port, USERNAME)
            print(f"downloading {job.size_bytes / 1e6:.1f} MB at {args.rate / 1024:.0f} kB/s "
                  f"(about {job.size_bytes / args.rate:.0f} s) through gunicorn -c gunicorn.conf.py ...", flush=True)
            status, body, headers, seconds, ended = slow_download(
                port, f"/history/exports/{job.pk}/download", cookie, args.rate)
        finally:
            stop(process)
            log.seek(0)
            worker_lines = [line for line in log.read().splitlines() if "WORKER TIMEOUT" in line or "Error" in line]
    rows = body.count(b"\n") - 1  # minus the header line
    whole = str(len(body)) == headers.get("content-length")
    verdict = "PASS" if status == 200 and whole and rows == expected else "FAIL"
    print(f"download: HTTP {status}, {len(body):,} of {headers.get('content-length')} bytes in {seconds:.0f} s "
          f"({len(body) / seconds / 1024:.0f} kB/s), ended: {ended}; rows {rows:,} vs archive {expected:,}: {verdict}",
          flush=True)
    if worker_lines:
        print("gunicorn said:\n  " + "\n  ".join(worker_lines[-5:]))
    if verdict != "PASS":
        raise SystemExit(1)


def run_old_stream(args: argparse.Namespace, account) -> None:
    """The export streamed from the request under the old command, for comparison."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT time FROM messaging_messagerecord WHERE official_account_id = %s ORDER BY time DESC "
            "OFFSET %s LIMIT 1", [account.pk, args.old_stream - 1])
        since = cursor.fetchone()[0].astimezone(account.zone).date()
        cursor.execute("SELECT count(*) FROM messaging_messagerecord WHERE official_account_id = %s AND time >= %s",
                       [account.pk, since.isoformat() + "T00:00:00+08:00"])
        expected = cursor.fetchone()[0]
    with tempfile.NamedTemporaryFile("w", suffix=".py") as empty, tempfile.NamedTemporaryFile("w+") as log:
        env = gunicorn_env(args, EXPORT_STREAM_MAX_ROWS=str(10**9))  # stream everything, as before
        process, port = start(old_command(2, Path(empty.name)), env, log)
        try:
            cookie = login("127.0.0.1", port, USERNAME)
            print(f"old way: streaming {expected:,} records (since {since}) at {args.rate / 1024:.0f} kB/s through "
                  "`gunicorn kfadmin.wsgi --workers 2` (sync workers) ...", flush=True)
            status, body, headers, seconds, ended = slow_download(
                port, f"/history/export.csv?since={since.isoformat()}", cookie, args.rate)
        finally:
            stop(process)
            log.seek(0)
            said = [line for line in log.read().splitlines() if "TIMEOUT" in line]
    data, complete = dechunk(body)
    rows = data.count(b"\n") - 1
    print(f"old way: HTTP {status}, {len(data):,} bytes in {seconds:.0f} s, final chunk "
          f"{'received' if complete else 'MISSING'}, rows {rows:,} of {expected:,}"
          f"{' — cut: ' + said[-1].strip() if said else ''}", flush=True)


def first_requests(args: argparse.Namespace) -> None:
    """First request after a worker restart, three set-ups, ratios to the warm request."""
    with tempfile.NamedTemporaryFile("w", suffix=".py") as empty, \
            tempfile.NamedTemporaryFile("w", suffix=".py") as no_preload:
        no_preload.write(f"exec(open({str(ROOT / 'gunicorn.conf.py')!r}).read())\npreload_app = False\n")
        no_preload.flush()
        setups = [
            ("old command (sync, no config)", old_command(1, Path(empty.name))),
            ("gunicorn.conf.py (preload + warm-up)", [*NEW, "--workers", "1"]),
            ("gunicorn.conf.py, preload_app off (warm-up per worker)",
             [sys.executable, "-m", "gunicorn", "-c", no_preload.name, "--workers", "1"]),
        ]
        print(f"\nfirst request after a worker restart: GET {args.page} as a logged-in supervisor, one worker, "
              f"{args.restarts} restarts each")
        print(f"{'set-up':<56} {'warm ms':>8} {'first ms (each)':<34} {'median':>7} {'ratio':>6} "
              f"{'kill → answer ms':>16}")
        for label, command in setups:
            with tempfile.NamedTemporaryFile("w+") as log:
                process, port = start(command, gunicorn_env(args, WEB_THREADS="4"), log)
                try:
                    cookie = login("127.0.0.1", port, USERNAME)
                    page = request_bytes("127.0.0.1", port, "GET", args.page, {"Cookie": cookie})
                    for _ in range(5):
                        http("127.0.0.1", port, page)
                    warm = []
                    for _ in range(20):
                        began = time.perf_counter()
                        assert http("127.0.0.1", port, page).status == 200
                        warm.append((time.perf_counter() - began) * 1000)
                    firsts, answers = [], []
                    for _ in range(args.restarts):
                        child = worker_pid(process.pid)
                        killed = time.perf_counter()
                        os.kill(child, signal.SIGKILL)
                        # Time from the kill to the first answer (the master forks a new worker).
                        probe = request_bytes("127.0.0.1", port, "GET", "/healthz")
                        while True:
                            try:
                                if http("127.0.0.1", port, probe, timeout=30).status == 200:
                                    break
                            except OSError:
                                time.sleep(0.005)
                        answers.append((time.perf_counter() - killed) * 1000)
                        # /healthz imports little; the page is what a person asks for first.
                        child2 = worker_pid(process.pid)
                        os.kill(child2, signal.SIGKILL)
                        while worker_pid(process.pid) in (None, child2):
                            time.sleep(0.01)
                        time.sleep(args.settle)  # the new worker has booted
                        began = time.perf_counter()
                        assert http("127.0.0.1", port, page).status == 200
                        firsts.append((time.perf_counter() - began) * 1000)
                finally:
                    stop(process)
            w = statistics.median(warm)
            f = statistics.median(firsts)
            print(f"{label:<56} {w:>8.1f} {' '.join(f'{x:.0f}' for x in firsts):<34} {f:>7.1f} {f / w:>5.1f}x "
                  f"{statistics.median(answers):>16.0f}", flush=True)


def worker_pid(master: int) -> int | None:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 90 % in the measured account: 1,000,000 records to export.
    parser.add_argument("--rows", type=int, default=1_111_112)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rate", type=int, default=256 * 1024, help="bytes per second the client reads")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="kfadmin_bench_export")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--old-stream", type=int, default=0, metavar="N",
                        help="also stream N records the old way (sync workers, no config)")
    parser.add_argument("--restarts", type=int, default=0, help="worker restarts per set-up (0: skip)")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds between a restart and the first request")
    parser.add_argument("--page", default="/history/exports/")
    args = parser.parse_args()
    if not args.database.startswith("kfadmin_bench"):
        parser.error("the database name must start with kfadmin_bench (it is dropped)")
    args.export_root = Path(tempfile.mkdtemp(prefix="kfadmin-bench-export-"))

    import psycopg

    database_url = f"{args.server}/{args.database}"
    os.environ["DATABASE_URL"] = database_url
    os.environ.update({"SECRET_KEY": BENCH_SECRET_KEY, "FIELD_ENCRYPTION_KEY": BENCH_FIELD_KEY, "DEBUG": "false",
                       "EXPORT_ROOT": str(args.export_root), "LOG_LEVEL": "WARNING"})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kfadmin.settings")
    if not args.reuse:
        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{args.database}"')
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import OfficialAccount

    call_command("migrate", verbosity=0)
    if not args.reuse:
        began = time.perf_counter()
        print(f"building {args.rows:,} records ...", flush=True)
        build(args)
        print(f"built in {time.perf_counter() - began:.0f} s", flush=True)
    account = OfficialAccount.objects.get(appid=APPID_MAIN)
    try:
        if not args.skip_export:
            run_export(args, account)
        if args.old_stream:
            run_old_stream(args, account)
        if args.restarts:
            first_requests(args)
    finally:
        import shutil

        shutil.rmtree(args.export_root, ignore_errors=True)


if __name__ == "__main__":
    main()

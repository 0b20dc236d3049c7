"""Benchmark: end-to-end history sync against a raw COPY of the same rows.

    scripts/uv run python bench/sync_history.py                 # 1,000,000 records, 30 days
    scripts/uv run python bench/sync_history.py --records 100000

The emulator (in this process, `serve_in_thread`) holds the records. A child process
that does nothing but the sync imports them over HTTP exactly as a worker would
(`history_backfill`: token, getmsglist paging, JSON parsing, digests, binary COPY to
a staging table, INSERT … ON CONFLICT, reconciliation check, customer windows) into
the real schema with every index on. In the same run this process COPYs the same
rows, prepared in memory beforehand, into an identical table (`LIKE … INCLUDING
ALL`: same indexes, GIN bigram index included), once before and once after the sync
(the machine is shared; the ratio uses their mean). Printed: both rates, their ratio
(target: the sync reaches at least 0.5× the raw COPY) and the child's peak RSS from
`resource.getrusage` (target: at most 300 MB).

Uses its own database (`kfadmin_bench_sync` by default), dropped and recreated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

APPID = "wxbench0000000001"
SECRET = "bench-secret-0123456789abcdef0123"
WECHAT_ID = "bench_oa"
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _setup_django(database_url: str) -> None:
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


def _drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------ child: the sync


def child(args: argparse.Namespace) -> None:
    _setup_django(args.database_url)
    from messaging import sync
    from messaging.sync import history_backfill

    if args.no_split:
        # Diagnostic only: every page that touches archived time goes through staging.
        sync.SPLIT_PAGES = False
    if args.without_reply_windows:
        # Diagnostic only: shows what the customers' reply-window update costs.
        sync._touch_customers = lambda *args, **kwargs: None

    until = datetime.fromtimestamp(args.until, tz=UTC)
    days = (args.until - args.start) / 86400
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    began = time.perf_counter()
    progress = history_backfill(account_id=args.account_id, days=days, until=until)
    seconds = time.perf_counter() - began
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
        sys.stderr.write(out.getvalue())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "records": progress.records_seen,
                "stored": progress.records_stored,
                "windows": progress.windows_done,
                "pages": progress.pages,
                "seconds": seconds,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
            }
        )
    )


# ------------------------------------------------------------------ parent


def _raw_copy(rows: list[tuple]) -> float:
    """COPY the prepared rows into a clone of the archive table; returns seconds."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_copy")
        cursor.execute("CREATE TABLE bench_raw_copy (LIKE messaging_messagerecord INCLUDING ALL)")
        cursor.execute("CHECKPOINT")
    began = time.perf_counter()
    with transaction.atomic():
        raw = connection.connection
        with raw.cursor() as cursor:
            with cursor.copy(
                "COPY bench_raw_copy (official_account_id, time, worker, openid, opercode, "
                "text, digest, seq, source, created_at) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(
                    ["int8", "timestamptz", "text", "text", "int4", "text", "bytea", "int2", "text", "timestamptz"]
                )
                for row in rows:
                    copy.write_row(row)
    return time.perf_counter() - began


def _prepared_rows(store, account_id: int) -> list[tuple]:
    """The rows the sync stores, built before the clock starts."""
    from messaging.models import record_digest

    now = datetime.now(tz=UTC)
    seen: dict[tuple[int, bytes], int] = {}
    rows = []
    for r in store.dump(limit=10**9):
        digest = record_digest(r["worker"], r["openid"], r["opercode"], r["text"])
        key = (r["time"], digest)
        seq = seen.get(key, 0)
        seen[key] = seq + 1
        at = datetime.fromtimestamp(r["time"], tz=UTC)
        rows.append((account_id, at, r["worker"], r["openid"], r["opercode"], r["text"], digest, seq, "sync", now))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--database", default="kfadmin_bench_sync")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--without-reply-windows",
        action="store_true",
        help="diagnostic: skip the customers' reply-window update the sync normally does",
    )
    parser.add_argument("--profile", action="store_true",
                        help="profile the sync child (cProfile, main thread; slows it, so its ratio is not a figure)")
    parser.add_argument("--no-split", action="store_true",
                        help="diagnostic: stage a whole page whenever it touches archived time (the code before)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--account-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not args.database.startswith("kfadmin_bench"):
        parser.error("the database name must start with kfadmin_bench (it is dropped)")

    database_url = f"{args.server}/{args.database}"
    print(f"database {args.database}: recreating and migrating ...", flush=True)
    _recreate_database(args.server, args.database)
    _setup_django(database_url)
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import OfficialAccount
    from kfadmin.emulator import Emulator
    from kfadmin.emulator.server import serve_in_thread

    call_command("migrate", verbosity=0)

    emulator = Emulator(seed=1)
    emulator.add_official_account(appid=APPID, secret=SECRET, wechat_id=WECHAT_ID)
    generated = emulator.generate_records(appid=APPID, count=args.records, days=args.days, seed=1)
    print(f"emulator: {generated['total']:,} records over {args.days:g} days in {generated['seconds']:.1f} s", flush=True)
    server = serve_in_thread(emulator)
    account = OfficialAccount.objects.create(
        name="bench", appid=APPID, secret=SECRET, wechat_id=WECHAT_ID, api_base_url=server.base_url
    )
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    connection.close()

    try:
        print("raw COPY (before the sync): preparing the same rows ...", flush=True)
        rows = _prepared_rows(emulator.record_store(appid=APPID), account.pk)
        copy_seconds = [_raw_copy(rows)]
        connection.close()
        print("sync: running in a child process ...", flush=True)
        completed = subprocess.run(
            [
                # Linux carries the peak RSS of the process that forks into the child's
                # ru_maxrss, so a tiny launcher forks the child: its figure is its own.
                sys.executable, "-c", LAUNCHER,
                sys.executable, __file__, "--child",
                "--database-url", database_url,
                "--account-id", str(account.pk),
                "--start", str(generated["start"]),
                "--until", str(generated["end"] + 1),
                *(["--without-reply-windows"] if args.without_reply_windows else []),
                *(["--profile"] if args.profile else []),
                *(["--no-split"] if args.no_split else []),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "DATABASE_URL": database_url},
            check=False,
        )
        if completed.returncode != 0:
            sys.stderr.write(completed.stderr)
            raise SystemExit("the sync child failed")
        if args.profile:
            sys.stdout.write(completed.stderr)
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        stored = account.records.count()
        assert stored == args.records, f"archive holds {stored}, emulator {args.records}"
        print("raw COPY (after the sync) ...", flush=True)
        copy_seconds.append(_raw_copy(rows))
    finally:
        server.shutdown()
        connection.close()
        if not args.keep:
            _drop_database(args.server, args.database)

    # The machine is shared: the raw COPY runs before and after the sync, and the
    # ratio uses their mean, so a load change during the run biases neither side.
    sync_rate = result["records"] / result["seconds"]
    copy_rates = [len(rows) / seconds for seconds in copy_seconds]
    copy_rate = sum(copy_rates) / len(copy_rates)
    ratio = sync_rate / copy_rate
    print()
    print(f"records                      {result['records']:>12,}  ({result['windows']} windows, {result['pages']} pages)")
    print(f"end-to-end sync              {result['seconds']:>12.1f} s  {sync_rate:>10,.0f} records/s  (child CPU {result['cpu_seconds']:.1f} s)")
    print(
        f"raw COPY, same rows+indexes  {sum(copy_seconds) / 2:>12.1f} s  {copy_rate:>10,.0f} records/s"
        f"  (before {copy_rates[0]:,.0f}/s, after {copy_rates[1]:,.0f}/s)"
    )
    print(f"ratio sync / raw COPY        {ratio:>12.2f} x     target >= 0.50  {'met' if ratio >= 0.5 else 'MISSED'}")
    print(f"peak RSS of the sync process {result['peak_rss_mb']:>12.0f} MB    target <= 300  {'met' if result['peak_rss_mb'] <= 300 else 'MISSED'}")


if __name__ == "__main__":
    main()

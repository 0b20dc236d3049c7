"""Benchmark: archive search (`records_search`) on a large archive.

    scripts/uv run python bench/search.py                    # 10,000,000 records
    scripts/uv run python bench/search.py --rows 1000000     # smaller
    scripts/uv run python bench/search.py --reuse --explain  # keep the data, show plans

Generates the archive with binary COPY into the real schema (indexes dropped during
the load and rebuilt after, as a restore would), then VACUUM ANALYZE. Texts are
customer-service chat: Chinese words and phrases joined without spaces, some Latin
words, order numbers, punctuation, drawn from a 60,000-word vocabulary with a
Zipf-like distribution, so there are very common and very rare 2-character words.
Customers and agents are Zipf-distributed too; timestamps cover a year with many
records sharing a second.

For each case it prints p50/p95 (ms) of `records_search` at the first page and deep
(page 200 through cursors, or the last page when there are fewer), the plan the
selector used, the number of matching records, and the ratio against a plain
`LIKE '%q%'` query (same filters, same ORDER BY/LIMIT, no bigram index) measured in
the same run. Targets: p95 ≤ 50 ms for text search, ≤ 10 ms for openid / agent /
time filters at any depth. It also times both forced plans ("index", "scan") for
the text cases, to show why the choice matters.

Uses its own database (`kfadmin_bench_search` by default).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TABLE = "messaging_messagerecord"

# The most frequent words of a Chinese customer-service chat, most frequent first.
HEAD_WORDS = (
    "的 了 你好 我 是 吗 您好 请问 ， 。 ？ 谢谢 订单 亲 好的 一下 可以 什么 没有 退款 怎么 已经 这个 "
    "快递 发货 客服 收到 时候 帮您 稍等 查询 物流 地址 修改 取消 问题 优惠券 质量 签收 换货 退货 尺码 "
    "颜色 价格 活动 链接 售后 投诉 满意 评价 嗯 哦 呢 在吗 麻烦 看看 还是 不是 现在 今天 明天 多久 "
    "处理 申请 审核 成功 失败 支付 付款 微信 账号 会员 积分 包邮 运费 发票 电话 联系 工作日 仓库 "
    "库存 补发 漏发 破损 照片 拍照 核实 反馈 加急 催一下 好评 差评 抱歉 不好意思 理解 耐心 感谢 支持"
).split()
LATIN_WORDS = "ok OK hello hi thanks order refund iPhone size XL WeChat Pay SF Express ID VIP".split()
PHRASES = ["退款成功", "退款申请", "已经发货", "查询物流", "修改地址", "申请售后"]
PUNCTUATION = {"，", "。", "？"}


def build_vocabulary(rng: random.Random, size: int) -> tuple[list[str], list[float]]:
    """Words (Latin ones carry a trailing space) and cumulative Zipf weights."""
    words: list[str] = []
    seen: set[str] = set()

    def add(word: str) -> None:
        if word not in seen:
            seen.add(word)
            words.append(word)

    for i, word in enumerate(HEAD_WORDS):
        add(word)
        if i % 6 == 5 and LATIN_WORDS:
            add(LATIN_WORDS[(i // 6) % len(LATIN_WORDS)] + " ")
    for word in LATIN_WORDS:
        add(word + " ")
    # Phrases rank in the low hundreds: each is in a fraction of a percent of records.
    tail_start = len(words)
    common_chars = [chr(c) for c in range(0x4E00, 0x4E00 + 2500)]
    latin = "abcdefghijklmnopqrstuvwxyz"
    while len(words) < size:
        if len(words) - tail_start in (150, 170, 190, 210, 230, 250):
            add(PHRASES[(len(words) - tail_start - 150) // 20])
            continue
        kind = rng.random()
        if kind < 0.75:
            add("".join(rng.choice(common_chars) for _ in range(rng.choice((2, 2, 2, 3, 4)))))
        elif kind < 0.9:
            add("".join(rng.choice(latin) for _ in range(rng.randint(3, 8))) + " ")
        else:
            add(str(rng.randint(10**9, 10**12)) + " ")
    weights = [1.0 / (rank**1.07) for rank in range(1, len(words) + 1)]
    cumulative = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    return words, cumulative


def zipf_cumulative(n: int, exponent: float) -> list[float]:
    """Cumulative weights of ranks 1..n under a Zipf law with this exponent."""
    out, total = [], 0.0
    for rank in range(1, n + 1):
        total += 1.0 / rank**exponent
        out.append(total)
    return out


def random_openid(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return "o" + "".join(rng.choice(alphabet) for _ in range(27))


def archive_rows(
    *, rows: int, seed: int, account_ids: tuple[int, int], openids: list[str], workers: list[str], end: int
):
    """COPY rows (ARCHIVE_COLUMNS) of a year of archive ending at `end` (a Unix time),
    in time order: texts from the Zipf vocabulary of chat words, Zipf-distributed
    customers (0.8) and agents (0.5), many records sharing a second (hence `seq`), 90 %
    in the first account. Both this benchmark and bench/dashboard.py load it."""
    from messaging.models import record_digest

    rng = random.Random(seed)
    words, cumulative = build_vocabulary(rng, 60000)
    openid_cum = zipf_cumulative(len(openids), 0.8)
    worker_cum = zipf_cumulative(len(workers), 0.5)
    lengths = (1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 10, 12)
    opercodes = (2003,) * 8 + (2002,) * 8 + (2001,) + (1000, 1001, 1004)
    choices, rand = rng.choices, rng.random
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    # A float: truncating each gap would end the archive months before `end`, and the
    # dashboard's "today" would have no messages.
    t = float(end - 365 * 86400)
    mean_gap = 365 * 86400 / rows
    created = datetime.now(tz=UTC)
    seen: dict[bytes, int] = {}
    last_t = None
    main_id, other_id = account_ids
    for _ in range(rows):
        t += rand() * 2 * mean_gap
        second = min(int(t), end)
        opercode = opercodes[int(rand() * len(opercodes))]
        if opercode >= 2000:
            text = "".join(choices(words, cum_weights=cumulative, k=lengths[int(rand() * len(lengths))])).rstrip()
        else:
            text = ""
        openid = choices(openids, cum_weights=openid_cum)[0]
        worker = "" if opercode in (2001, 1000) else choices(workers, cum_weights=worker_cum)[0]
        account_id = main_id if rand() < 0.9 else other_id
        digest = record_digest(worker, openid, opercode, text)
        if second != last_t:
            seen.clear()
            last_t = second
        key = digest + account_id.to_bytes(4, "big")
        seq = seen.get(key, 0)
        seen[key] = seq + 1
        yield (account_id, epoch + timedelta(seconds=second), worker, openid, opercode, text, digest, seq,
               "sync", created)


def generate(args: argparse.Namespace, account_ids: tuple[int, int]):
    """The archive's rows: 200,000 customers and 60 agents, a year up to now."""
    rng = random.Random(f"{args.seed}-customers")
    openids = [random_openid(rng) for _ in range(200_000)]
    agents = [f"kf{n:03d}@bench_oa" for n in range(1, 61)]
    return archive_rows(
        rows=args.rows, seed=args.seed, account_ids=account_ids, openids=openids, workers=agents,
        end=int(time.time()),
    )


ARCHIVE_COLUMNS = "official_account_id, time, worker, openid, opercode, text, digest, seq, source, created_at"
ARCHIVE_TYPES = ["int8", "timestamptz", "text", "text", "int4", "text", "bytea", "int2", "text", "timestamptz"]


def copy_into_archive(raw, rows, total: int, *, batch: int = 1_000_000) -> None:
    """Binary-COPY `total` archive rows with the archive's indexes and unique constraints
    dropped, then rebuild them (as a restore would): the fastest way to a big archive.
    `raw` is a psycopg connection in autocommit mode; rows are in ARCHIVE_COLUMNS order."""
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'u'",
            [TABLE],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
            [TABLE, TABLE],
        )
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {name}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")

        began = time.perf_counter()
        done = 0
        while done < total:
            with raw.transaction(), cursor.copy(f"COPY {TABLE} ({ARCHIVE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(ARCHIVE_TYPES)
                for row in rows:
                    copy.write_row(row)
                    done += 1
                    if done % batch == 0:
                        break
                else:
                    total = done  # the rows ran out
            rate = done / (time.perf_counter() - began)
            print(f"  loaded {done:,} rows ({rate:,.0f}/s)", flush=True)

        cursor.execute("SET maintenance_work_mem = '1GB'")
        for name, definition in constraints:
            started = time.perf_counter()
            cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")
            print(f"  built {name} in {time.perf_counter() - started:.0f} s", flush=True)
        for name, definition in indexes:
            started = time.perf_counter()
            cursor.execute(definition)
            print(f"  built {name} in {time.perf_counter() - started:.0f} s", flush=True)


def load(args: argparse.Namespace) -> None:
    from django.db import connection

    from accounts.models import OfficialAccount

    main = OfficialAccount.objects.create(name="bench", appid="wxbenchsearch00001", secret="s", wechat_id="bench_oa")
    other = OfficialAccount.objects.create(name="other", appid="wxbenchsearch00002", secret="s", wechat_id="other_oa")
    connection.ensure_connection()
    raw = connection.connection
    raw.autocommit = True
    copy_into_archive(raw, generate(args, (main.pk, other.pk)), args.rows)
    with raw.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(f"VACUUM (ANALYZE) {TABLE}")
        print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.0f} s", flush=True)
    connection.close()  # Django reconnects with its own autocommit setting


# ------------------------------------------------------------------ measuring


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        out.append((time.perf_counter() - began) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cursor_at_page(account, page: int, **filters) -> tuple[str | None, int]:
    """The cursor that fetches `page` (or the last page), and that page's number."""
    from messaging.selectors import records_search

    cursor = None
    number = 1
    while number < page:
        result = records_search(account=account, after_cursor=cursor, **filters)
        if result.next_cursor is None:
            break
        cursor = result.next_cursor
        number += 1
    return cursor, number


def baseline_sql(account_id: int, q: str | None, after, filters: dict):
    """A plain LIKE '%q%' query with the same filters and order: no bigram index."""
    from messaging.selectors import _COLUMNS, ascii_fold, like_contains_pattern

    clauses = ["official_account_id = %s"]
    params: list = [account_id]
    if filters.get("openid"):
        clauses.append("openid = %s")
        params.append(filters["openid"])
    if filters.get("agent"):
        clauses.append("worker = %s")
        params.append(filters["agent"])
    if filters.get("since"):
        clauses.append("time >= %s")
        params.append(filters["since"])
    if filters.get("until"):
        clauses.append("time < %s")
        params.append(filters["until"])
    if q:
        clauses.append('lower("text" COLLATE "C") LIKE %s')
        params.append(like_contains_pattern(ascii_fold(q)))
    if after is not None:
        clauses.append('("time", id) < (%s, %s)')
        params.extend(after)
    sql = f"SELECT {_COLUMNS} FROM {TABLE} WHERE {' AND '.join(clauses)} ORDER BY time DESC, id DESC LIMIT 51"
    return sql, params


def count_matches(account_id: int, q: str | None, filters: dict) -> int:
    from django.db import connection

    from messaging.selectors import _TERMS, _index_terms, ascii_fold

    sql, params = baseline_sql(account_id, q, None, filters)
    where = sql.split(" WHERE ", 1)[1].split(" ORDER BY ")[0]
    if q and len(q) >= 2:
        where += f" AND {_TERMS} @> %s::text[]"
        params.append(_index_terms(ascii_fold(q), filters.get("agent")))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE {where}", params)
        return cursor.fetchone()[0]


def explain(sql: str, params) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join("      " + row[0] for row in cursor.fetchall())


def run_fixed_cases(args: argparse.Namespace, account, cases, results: list) -> None:
    """The cases measured since the first version: one query repeated after warm-ups."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from messaging.selectors import cursor_decode, records_search

    print()
    print(f"{'case':<22} {'page':>5} {'matches':>10} {'plan':>6} {'p50 ms':>8} {'p95 ms':>8} {'target':>7} "
          f"{'LIKE p50':>9} {'ratio':>7}")
    for label, filters, target in cases:
        matches = count_matches(account.pk, filters.get("q"), filters)
        for depth in (1, 200):
            cursor, page = cursor_at_page(account, depth, **filters) if depth > 1 else (None, 1)
            if depth > 1 and page == 1:
                continue

            def search(cursor=cursor, filters=filters):
                return records_search(account=account, after_cursor=cursor, **filters)

            for _ in range(3 if target is not None else 1):
                result = search()
            samples = timed(search, args.runs if target is not None else args.baseline_runs)
            after = cursor_decode(cursor) if cursor else None
            sql, params = baseline_sql(account.pk, filters.get("q"), after, filters)

            def plain(sql=sql, params=params):
                with connection.cursor() as c:
                    c.execute(sql, params)
                    c.fetchall()

            base = timed(plain, args.baseline_runs)
            p50, p95, b50 = pct(samples, 0.5), pct(samples, 0.95), pct(base, 0.5)
            met = "" if target is None else ("met" if p95 <= target else "MISSED")
            shown = "-" if target is None else f"<={target}"
            print(f"{label:<22} {page:>5} {matches:>10,} {result.plan:>6} {p50:>8.1f} {p95:>8.1f} "
                  f"{shown:>7} {b50:>9.1f} {b50 / p50:>6.1f}x  {met}", flush=True)
            results.append((label, page, target is None or p95 <= target))
            if args.explain:
                with CaptureQueriesContext(connection) as captured:
                    search()
                last = captured.captured_queries[-1]["sql"]
                print(explain(last, None))
            if filters.get("q") and len(filters["q"]) >= 2 and args.plans:
                for plan in ("index", "scan"):
                    forced = timed(lambda plan=plan, cursor=cursor, filters=filters: records_search(
                        account=account, after_cursor=cursor, plan=plan, **filters), args.baseline_runs)
                    print(f"{'':<22} {'':>5} {'':>10} {plan:>6} {pct(forced, 0.5):>8.1f} {pct(forced, 0.95):>8.1f}"
                          "   (forced plan)", flush=True)


def shape_words(account_id: int, words: list[str], count: int) -> dict[str, list[str]]:
    """Up to `count` varied words per shape (so that no word repeats within a shape's
    runs), chosen from the vocabulary and the planner's term statistics (the selector
    decides from the same numbers)."""
    from messaging.selectors import PROBE_ROWS, _term_frequencies, search_stats_forget

    search_stats_forget()
    freqs, _floor = _term_frequencies()
    needed = 51 / PROBE_ROWS
    cjk = [w for w in words if len(w) == 2 and all("\u4e00" <= c <= "\u9fff" for c in w)]
    above = [w for w in cjk if needed <= freqs.get(w, 0) <= 1.6 * needed][:count]
    below = [w for w in cjk if 0.5 * needed <= freqs.get(w, 0) < needed][:count]
    common = [w for w in cjk if freqs.get(w, 0) >= 20 * needed][:count]
    numbers = [w.strip() for w in words if w.strip().isdigit() and len(w.strip()) == 12]
    present = []
    for number in numbers[: 5 * count]:
        if count_matches(account_id, number, {}) > 0:
            present.append(number)
        if len(present) == count:
            break
    rare = []
    cjk_set = set(cjk)
    for word in [w for w in words[30000:] if w in cjk_set]:
        if 20 <= count_matches(account_id, word, {}) <= 2000:
            rare.append(word)
        if len(rare) == max(4, count // 4):
            break
    return {"above": above, "below": below, "common": common, "numbers": present, "rare": rare}


def run_shapes(args: argparse.Namespace, account, agent: str, words: list[str], results: list) -> None:
    """The shapes people use, with varied words and no warm-up: each query of a case
    uses the next word of its list, and the first is timed cold."""
    from collections import Counter

    from django.db import connection

    from messaging.selectors import records_search

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT worker, count(*) FROM {TABLE} WHERE official_account_id = %s AND worker <> '' "
            "GROUP BY worker ORDER BY count(*) DESC", [account.pk])
        by_size = [row[0] for row in cursor.fetchall()]
    agents = [by_size[0], by_size[len(by_size) // 2], by_size[-1]]
    chosen = shape_words(account.pk, words, args.runs)
    print()
    print("words: " + "; ".join(f"{k} {' '.join(v)}" for k, v in chosen.items()))
    # Text + agent: common, near-threshold and rare words and a phrase, interleaved, each
    # with the next of the busiest, the median and the quietest agent.
    bands = [chosen["common"], chosen["above"], chosen["below"], chosen["rare"], PHRASES]
    mixed = [band[i] for i in range(args.runs) for band in bands if i < len(band)][: args.runs]
    shapes = [
        ("2-char just above probe", [{"q": w} for w in chosen["above"]], 50),
        ("2-char just below probe", [{"q": w} for w in chosen["below"]], 50),
        ("12-digit order number", [{"q": w} for w in chosen["numbers"]], 50),
        ("text + agent", [{"q": w, "agent": agents[i % 3]} for i, w in enumerate(mixed)], 50),
        ("common + kind none", [{"q": w, "kinds": ["session"]} for w in chosen["common"]], 50),
        ("common + kind agent", [{"q": w, "kinds": ["agent"]} for w in chosen["common"]], 50),
    ]
    print(f"{'shape':<26} {'words':>5} {'plans':<22} {'first ms':>9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
          f"{'target':>7} {'LIKE ms':>8} {'ratio':>6}")
    for label, variants, target in shapes:
        if not variants:
            print(f"{label:<26} no words of this shape in the archive")
            continue
        samples, plans = [], Counter()
        for i in range(args.runs):
            filters = variants[i % len(variants)]
            began = time.perf_counter()
            page = records_search(account=account, **filters)
            samples.append((time.perf_counter() - began) * 1000)
            plans[page.plan] += 1
        sql, params = baseline_sql(account.pk, variants[0]["q"], None, variants[0])
        if variants[0].get("kinds"):
            sql = sql.replace(" ORDER BY", " AND opercode = ANY(%s) ORDER BY")
            params.append(sorted(kinds_codes(variants[0]["kinds"])))

        def plain(sql=sql, params=params):
            with connection.cursor() as c:
                c.execute(sql, params)
                c.fetchall()

        base = pct(timed(plain, 1), 0.5)
        p50, p95 = pct(samples, 0.5), pct(samples, 0.95)
        met = p95 <= target
        shown = " ".join(f"{k}x{v}" for k, v in plans.most_common())
        print(f"{label:<26} {len(variants):>5} {shown:<22} {samples[0]:>9.1f} {p50:>8.1f} {p95:>8.1f} "
              f"{max(samples):>8.1f} {'<=' + str(target):>7} {base:>8.1f} {base / p50:>5.1f}x  "
              f"{'met' if met else 'MISSED'}", flush=True)
        results.append((label, 1, met))


def kinds_codes(kinds: list[str]) -> set[int]:
    from messaging.selectors import KINDS

    return {code for kind in kinds for code in KINDS[kind]}


def run_cases(args: argparse.Namespace) -> None:
    from django.db import connection

    from accounts.models import OfficialAccount
    from messaging.selectors import search_stats_forget

    account = OfficialAccount.objects.get(appid="wxbenchsearch00001")
    search_stats_forget()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT openid, count(*) FROM {TABLE} WHERE official_account_id = %s GROUP BY openid "
            "HAVING count(*) >= %s ORDER BY count(*) LIMIT 1",
            [account.pk, min(10_050, args.rows // 200)],
        )
        openid = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT worker, max(time) FROM {TABLE} WHERE official_account_id = %s AND worker <> '' "
            "GROUP BY worker ORDER BY count(*) DESC LIMIT 1",
            [account.pk],
        )
        agent, latest = cursor.fetchone()
        # The rare word: a 2-character tail word found in a few hundred records at most.
        rare = None
        rng = random.Random(args.seed)
        words, _ = build_vocabulary(rng, 60000)
        for word in words[40000:]:
            if len(word) == 2 and "\u4e00" <= word[0] <= "\u9fff":
                n = count_matches(account.pk, word, {})
                if 20 <= n <= 2000:
                    rare = word
                    break
    day = {"agent": agent, "since": latest - timedelta(hours=24), "until": latest + timedelta(seconds=1)}
    cases = [
        ("rare 2-char word", {"q": rare}, 50),
        ("common 2-char word", {"q": "你好"}, 50),
        ("common 2-char word 2", {"q": "退款"}, 50),
        ("4-char phrase", {"q": "退款成功"}, 50),
        ("openid", {"openid": openid}, 10),
        ("agent + 24 h", day, 10),
        ("agent", {"agent": agent}, 10),
        ("common 1-char", {"q": "好"}, 50),
        # No target: a single character that no record contains reads the account.
        ("absent 1-char", {"q": "龘"}, None),
    ]
    results: list[tuple[str, int, bool]] = []
    if not args.only_shapes:
        run_fixed_cases(args, account, cases, results)
    run_shapes(args, account, agent, words, results)
    missed = [f"{label} page {page}" for label, page, ok in results if not ok]
    print()
    print("all targets met" if not missed else "targets missed: " + ", ".join(missed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=40, help="timed runs per case")
    parser.add_argument("--baseline-runs", type=int, default=3, help="timed runs of the slow plain LIKE and forced plans")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--database", default="kfadmin_bench_search")
    parser.add_argument("--reuse", action="store_true", help="reuse the database of an earlier run")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of each case")
    parser.add_argument("--no-plans", dest="plans", action="store_false", help="skip the forced-plan timings")
    parser.add_argument("--only-shapes", action="store_true", help="only the varied-word shapes (not the fixed cases)")
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

    if not args.reuse:
        call_command("migrate", verbosity=0)
        print(f"loading {args.rows:,} records ...", flush=True)
        began = time.perf_counter()
        load(args)
        print(f"loaded in {time.perf_counter() - began:.0f} s", flush=True)
    try:
        run_cases(args)
    finally:
        from django.db import connection

        connection.close()
        if args.drop:
            with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


if __name__ == "__main__":
    main()

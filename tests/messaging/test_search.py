"""records_search and records_iter_export, checked against a brute-force filter in Python.

Every query runs through each PostgreSQL plan (the bigram GIN index, the time-ordered
scan, the capped probe with its fallback, and the portable ORM query SQLite uses), at
several page sizes, walking all pages by cursor.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from messaging import selectors
from messaging.models import MessageRecord, record_digest
from messaging.selectors import (
    RecordCount,
    RecordPage,
    cursor_decode,
    cursor_encode,
    records_count,
    records_iter_export,
    records_search,
    search_stats_forget,
    text_bigrams,
)
from tests.factories import AgentFactory, OfficialAccountFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

CHINESE = [
    "我要退款", "退款成功了吗", "请问怎么退货", "你好", "好", "谢谢你", "快递到哪了",
    "退", "您好，请问有什么可以帮您？", "订单号是多少", "退款退款退款", "哈哈",
    "发货了没有", "已经发货", "我要投诉", "优惠券怎么用", "好的谢谢",
]
LATIN = [
    "Hello World", "HELLO world", "hello", "order #123", "100% sure", "a_b_c", "abc",
    "under_score", "back\\slash", "café", "CAFÉ", "it's", 'say "hi"', "50%_off",
    "Ünïcödé", "x",
]
ODD = ["", "😀 emoji 😀", "<script>alert(1)</script>", "混合 Mixed 文本 TEXT", "\t tab", "  "]

QUERIES = [
    # 1 character
    "退", "好", "哈", "h", "H", "%", "_", "\\", "'", "é", "É", "😀", "我", "嗯",
    # 2 characters
    "退款", "你好", "快递", "lo", "LO", "a_", "%_", "0%", "<s", "😀 ",
    # 3+ characters
    "退款成功", "请问怎么", "hello", "HELLO WORLD", "o w", "100%", "a_b", "back\\s",
    "café", "CAFÉ", "script>", "mixed 文本", "不存在的词", "it's", '"hi"',
    # whitespace is trimmed; empty means no text filter
    " 退款 ", "", "   ",
]


def _make_records(account, *, n: int, seed: int, agents: list[str], openids: list[str]):
    rng = random.Random(seed)
    texts = CHINESE + LATIN + ODD
    objs = []
    t = T0
    for i in range(n):
        # Runs of equal timestamps, so keyset pagination must use the id tiebreak.
        if rng.random() < 0.35:
            t += timedelta(seconds=rng.choice([1, 1, 2, 30, 600]))
        opercode = rng.choice([2001, 2002, 2003, 2003, 2002, 1000, 1001, 1004])
        words = [rng.choice(texts) for _ in range(rng.choice([1, 1, 2]))]
        text = "" if opercode < 2000 and rng.random() < 0.7 else " ".join(words)
        worker = "" if opercode in (2001, 1000) else rng.choice(agents)
        openid = rng.choice(openids)
        objs.append(
            MessageRecord(
                official_account=account,
                time=t,
                worker=worker,
                openid=openid,
                opercode=opercode,
                text=text,
                digest=record_digest(worker, openid, opercode, text),
                seq=i,  # unique key without caring about real seq semantics here
            )
        )
    return MessageRecord.objects.bulk_create(objs)


@pytest.fixture
def archive():
    account = OfficialAccountFactory()
    other = OfficialAccountFactory()
    agents = [AgentFactory(official_account=account).kf_account for _ in range(3)]
    openids = [f"o_customer_{i:02d}" for i in range(5)]
    records = _make_records(account, n=420, seed=7, agents=agents, openids=openids)
    # Another account with the same texts must never leak into results.
    _make_records(other, n=120, seed=8, agents=agents, openids=openids)
    return account, agents, openids, records


def _fold(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _expected(records, *, q=None, agent=None, openid=None, since=None, until=None, kinds=None):
    codes = None
    if kinds is not None:
        codes = set()
        for kind in kinds:
            codes |= set(selectors.KINDS[kind])
    needle = _fold((q or "").strip())
    out = [
        r
        for r in records
        if (not needle or needle in _fold(r.text))
        and (agent is None or r.worker == agent)
        and (openid is None or r.openid == openid)
        and (since is None or r.time >= since)
        and (until is None or r.time < until)
        and (codes is None or r.opercode in codes)
    ]
    out.sort(key=lambda r: (r.time, r.pk), reverse=True)
    return [r.pk for r in out]


def _all_pages(account, *, limit: int, plan: str, **filters) -> list[int]:
    ids: list[int] = []
    cursor = None
    for _ in range(10000):
        page = records_search(account=account, after_cursor=cursor, limit=limit, plan=plan, **filters)
        assert isinstance(page, RecordPage)
        assert len(page.records) <= limit
        ids.extend(r.pk for r in page.records)
        if page.next_cursor is None:
            return ids
        assert len(page.records) == limit
        cursor = page.next_cursor
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("plan", ["auto", "index", "scan", "portable"])
def test_every_query_matches_a_brute_force_filter_on_every_plan(archive, plan):
    account, _agents, _openids, records = archive
    for q in QUERIES:
        expected = _expected(records, q=q)
        for limit in (7, 50):
            assert _all_pages(account, limit=limit, plan=plan, q=q) == expected, (q, limit)


def test_the_search_finds_what_it_should_in_the_fixture(archive):
    # Guards the brute-force comparison against a corpus where nothing matches.
    account, _agents, _openids, records = archive
    assert len(_expected(records, q="退款")) > 20
    assert len(_expected(records, q="hello")) > 20
    assert len(_expected(records, q="%")) > 5
    assert _expected(records, q="不存在的词") == []
    first = records_search(account=account, q="退款", limit=5)
    assert first.next_cursor is not None and all("退款" in r.text for r in first.records)


def test_latin_letters_match_case_insensitively_and_other_letters_exactly(archive):
    account, _agents, _openids, _records = archive
    texts = {r.text for r in _collect(account, q="HeLLo wOrLd")}
    assert any("Hello World" in t for t in texts) and any("HELLO world" in t for t in texts)
    accented = {r.text for r in _collect(account, q="café")}
    assert accented and all("café" in t for t in accented)
    assert not any("CAFÉ" in t and "café" not in t for t in accented)


def test_like_wildcards_in_the_query_are_literal(archive):
    account, _agents, _openids, _records = archive
    assert all("%" in r.text for r in _collect(account, q="%"))
    assert all("a_b" in r.text for r in _collect(account, q="a_b"))
    assert all("\\" in r.text for r in _collect(account, q="\\"))
    assert _collect(account, q="a%c") == []


@pytest.mark.parametrize("plan", ["auto", "index", "scan", "portable"])
def test_filters_and_kinds_combine_with_text_like_the_brute_force(archive, plan):
    account, agents, openids, records = archive
    since = T0 + timedelta(minutes=30)
    until = T0 + timedelta(hours=5)
    cases = [
        {"agent": agents[0]},
        {"openid": openids[1]},
        {"openid": openids[2], "q": "退款"},
        {"agent": agents[1], "q": "hello"},
        {"since": since, "until": until},
        {"since": since, "q": "好"},
        {"kinds": ["customer"]},
        {"kinds": ["agent"], "q": "o"},
        {"kinds": ["session"]},
        {"kinds": ["customer", "session"], "openid": openids[0]},
        {"agent": agents[2], "since": since, "until": until, "kinds": ["agent"], "q": "你好"},
    ]
    for filters in cases:
        expected = _expected(records, **filters)
        assert _all_pages(account, limit=9, plan=plan, **filters) == expected, filters


def test_an_agent_filter_accepts_the_agent_row(archive):
    account, agents, _openids, records = archive
    agent = account.agents.get(kf_account=agents[0])
    page = records_search(account=account, agent=agent, limit=1000)
    assert [r.pk for r in page.records] == _expected(records, agent=agents[0])


def test_pages_neither_skip_nor_repeat_records_that_share_a_timestamp():
    account = OfficialAccountFactory()
    same_second = T0 + timedelta(hours=1)
    objs = [
        MessageRecord(
            official_account=account, time=same_second, openid="o_same", opercode=2003,
            text="同一秒", digest=record_digest("", "o_same", 2003, "同一秒"), seq=i,
        )
        for i in range(23)
    ]
    created = MessageRecord.objects.bulk_create(objs)
    expected = sorted((r.pk for r in created), reverse=True)
    for plan in ("auto", "index", "scan", "portable"):
        for q in (None, "同一", "一"):
            assert _all_pages(account, limit=4, plan=plan, q=q) == expected


def test_the_probe_answers_dense_queries_and_falls_back_to_the_index_otherwise(monkeypatch):
    account = OfficialAccountFactory()
    objs = []
    for i in range(60):
        text = "退款" if i % 2 else ("稀有的词" if i in (10, 40) else "别的")
        openid = "o_few" if i in (3, 5, 7) else "o_many"
        objs.append(
            MessageRecord(
                official_account=account, time=T0 + timedelta(seconds=i), openid=openid,
                opercode=2003, text=text, digest=record_digest("", openid, 2003, text), seq=0,
            )
        )
    records = MessageRecord.objects.bulk_create(objs)
    monkeypatch.setattr(selectors, "PROBE_ROWS", 8)
    cases = [({"q": "退款"}, "probe"), ({"q": "稀有"}, "index"), ({"q": "别的", "openid": "o_few"}, "probe")]
    for filters, plan in cases:
        page = records_search(account=account, limit=3, **filters)
        assert page.plan == plan, filters
        assert _all_pages(account, limit=3, plan="auto", **filters) == _expected(records, **filters)


def test_the_plan_choice_reads_planner_statistics_once_they_exist(archive):
    account, _agents, _openids, records = archive
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_messagerecord")
    search_stats_forget()
    try:
        freqs, _floor = selectors._term_frequencies()
        assert freqs, "ANALYZE should have collected bigram frequencies"
        for q in ("退款", "你好", "不存在的词", "hello"):
            assert _all_pages(account, limit=10, plan="auto", q=q) == _expected(records, q=q)
    finally:
        search_stats_forget()


def test_the_bigram_function_agrees_with_its_python_mirror():
    samples = ["Hello 世界ab", "a", "", "ÀÉ Zz", "😀x😀", "退款退款"]
    with connection.cursor() as cursor:
        for text in samples:
            cursor.execute("SELECT messaging_text_bigrams(%s)", [text])
            assert sorted(set(cursor.fetchone()[0])) == text_bigrams(text), text


def test_the_bigram_condition_the_search_writes_can_use_the_gin_index(archive):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            f"EXPLAIN SELECT id FROM messaging_messagerecord WHERE {selectors._TERMS} @> %s::text[]",
            [["退款"]],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "record_terms" in plan


def test_the_terms_function_agrees_with_its_python_mirror():
    samples = [
        ("Hello 世界ab", "kf1@oa"), ("", ""), ("a", "kf2@oa"), ("订单 202512070001 已发货", ""),
        ("电话 13800138000，订单12345 和 1234567x7654321", "kf3@oa"), ("٠١٢٣٤٥٦ full-width １２３４５６", ""),
        ("no digits here", "w:odd@oa"),
    ]
    with connection.cursor() as cursor:
        for text, worker in samples:
            cursor.execute("SELECT messaging_record_terms(%s, %s)", [text, worker])
            assert sorted(set(cursor.fetchone()[0])) == selectors.record_terms(text, worker), text


def test_the_cursor_round_trips_and_is_opaque():
    at = datetime(2025, 3, 1, 8, 0, 5, 123456, tzinfo=UTC)
    cursor = cursor_encode(at, 987)
    assert cursor_decode(cursor) == (at, 987)
    assert "987" not in cursor and ":" not in cursor


@pytest.mark.parametrize(
    "bad", ["", "not a cursor", "!!!!", "MTIz", "YWJjOmRlZg", "MTIzOi01", "x" * 100, "MTIzOjQ1OjY"]
)
def test_a_malformed_cursor_is_a_clear_value_error(bad):
    account = OfficialAccountFactory()
    with pytest.raises(ValueError, match="cursor"):
        records_search(account=account, after_cursor=bad)


def test_unknown_kinds_and_bad_limits_are_refused():
    account = OfficialAccountFactory()
    with pytest.raises(ValueError, match="kind"):
        records_search(account=account, kinds=["customers"])
    with pytest.raises(ValueError, match="limit"):
        records_search(account=account, limit=0)
    with pytest.raises(ValueError, match="plan"):
        records_search(account=account, plan="fast")


def test_a_query_with_a_nul_character_matches_nothing(archive):
    account, *_ = archive
    page = records_search(account=account, q="退\x00款")
    assert page.records == [] and page.next_cursor is None


@pytest.mark.parametrize("newest_first", [False, True])
def test_the_export_streams_the_same_records_as_the_search(archive, newest_first):
    account, agents, openids, records = archive
    cases = [{}, {"q": "退款"}, {"q": "h"}, {"agent": agents[0], "kinds": ["agent"]}, {"openid": openids[3]}]
    for filters in cases:
        expected = _expected(records, **filters)
        if not newest_first:
            expected = expected[::-1]
        got = [
            r.pk
            for r in records_iter_export(account=account, newest_first=newest_first, chunk_size=17, **filters)
        ]
        assert got == expected, filters


def test_odd_texts_come_back_unchanged(archive):
    account, *_ = archive
    for text in ODD[1:4]:
        found = _collect(account, q=text.strip())
        assert any(r.text == text or text in r.text for r in found), text


def _collect(account, **filters):
    out = []
    cursor = None
    while True:
        page = records_search(account=account, after_cursor=cursor, limit=100, **filters)
        out.extend(page.records)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor



def test_the_count_agrees_with_a_brute_force_filter_and_stops_at_the_cap(archive):
    account, agents, openids, records = archive
    for q in QUERIES:
        expected = len(_expected(records, q=q))
        assert records_count(account=account, q=q, cap=1000) == RecordCount(expected), q
        assert records_count(account=account, q=q, cap=10) == RecordCount(min(expected, 10), more=expected > 10), q
    by_customer = len(_expected(records, openid=openids[0], kinds=["customer"]))
    assert records_count(account=account, openid=openids[0], kinds=["customer"]) == RecordCount(by_customer)
    assert records_count(account=account, q="\x00") == RecordCount(0)


def test_the_search_its_count_and_the_export_take_one_filter_object():
    account = OfficialAccountFactory()
    _make_records(account, n=300, seed=9, agents=["a@oa", "b@oa"], openids=["o_1", "o_2", "o_3"])
    asked = selectors.RecordFilter(q="退款", agent="a@oa", kinds=("customer", "agent"), since=T0)
    spelled = {"q": "退款", "agent": "a@oa", "kinds": ("customer", "agent"), "since": T0}

    page = records_search(account=account, filters=asked, limit=1000)
    assert page.records
    assert page.records == records_search(account=account, limit=1000, **spelled).records
    assert records_count(account=account, filters=asked) == RecordCount(len(page.records))
    exported = list(records_iter_export(account=account, filters=asked, newest_first=True))
    assert [r.pk for r in exported] == [r.pk for r in page.records]


def test_a_filter_object_and_keyword_criteria_are_not_mixed():
    with pytest.raises(TypeError):
        records_search(account=1, filters=selectors.RecordFilter(q="x"), openid="o_1")


def test_a_filter_names_only_what_was_asked():
    assert selectors.RecordFilter().given() == {}
    assert selectors.RecordFilter(q="退款", since=T0).given() == {"q": "退款", "since": T0}


def _record(account, text: str, *, opercode: int = 2001, at: datetime = T0) -> MessageRecord:
    return MessageRecord.objects.create(
        official_account=account, time=at, worker="", openid="o_k", opercode=opercode, text=text,
        digest=record_digest("", "o_k", opercode, text), seq=0,
    )


def test_a_text_search_over_session_events_alone_answers_at_once_when_they_hold_no_text():
    account = OfficialAccountFactory()
    _record(account, "你好")
    _record(account, "", opercode=1001)
    page = records_search(account=account, q="你好", kinds=["session"])
    assert (page.records, page.plan) == ([], "empty")
    # With any other kind the search runs as usual.
    assert [r.text for r in records_search(account=account, q="你好", kinds=["session", "customer"]).records] == ["你好"]


def test_a_session_event_with_text_is_still_found():
    account = OfficialAccountFactory()
    odd = _record(account, "你好 from an event", opercode=1004)
    page = records_search(account=account, q="你好", kinds=["session"])
    assert [r.pk for r in page.records] == [odd.pk] and page.plan != "empty"


def test_the_index_plan_asks_for_the_rarest_bigrams_and_still_matches_exactly():
    account = OfficialAccountFactory()
    wanted = _record(account, "订单 202512070001 已发货")
    _record(account, "订单 202512070002 已发货", at=T0 + timedelta(seconds=1))
    _record(account, "2025120 70001", at=T0 + timedelta(seconds=2))  # every bigram but one
    assert len(text_bigrams("202512070001")) > selectors.INDEX_BIGRAMS
    page = records_search(account=account, q="202512070001", plan="index")
    assert [r.pk for r in page.records] == [wanted.pk]


def _plain_like(account, *, q: str, worker: str | None = None) -> list[int]:
    """The ids a plain `LIKE '%q%'` query returns, newest first: no index term involved."""
    sql = (
        "SELECT id FROM messaging_messagerecord WHERE official_account_id = %s "
        "AND lower(\"text\" COLLATE \"C\") LIKE %s"
    )
    params: list = [account.pk, selectors.like_contains_pattern(selectors.ascii_fold(q))]
    if worker is not None:
        sql += " AND worker = %s"
        params.append(worker)
    with connection.cursor() as cursor:
        cursor.execute(sql + ' ORDER BY "time" DESC, id DESC', params)
        return [row[0] for row in cursor.fetchall()]


def _numbers_archive():
    account = OfficialAccountFactory()
    texts = [
        "订单 202512070001 已发货", "订单202512070001", "x202512070001999 (a longer run)",
        "2025120 70001 (split)", "202512070002", "电话 13800138000", "12345", "1234567", "",
        "退款 202512070001 退款", "full-width ２０２５１２０７０００１",
    ]
    objs = []
    for i in range(66):
        text = texts[i % len(texts)]
        worker = "" if i % 3 == 0 else f"kf{i % 2}@oa"
        objs.append(MessageRecord(
            official_account=account, time=T0 + timedelta(seconds=i // 2), worker=worker, openid="o_n",
            opercode=2003, text=text, digest=record_digest(worker, "o_n", 2003, text), seq=i,
        ))
    MessageRecord.objects.bulk_create(objs)
    return account


@pytest.mark.parametrize("q", ["202512070001", "2512070001", "12070001 已发", "138001380", "123456", "1234567",
                               "12345", "0001999", "２０２５１２"])
def test_a_long_number_is_found_through_its_digit_substrings_exactly_as_like_finds_it(q):
    account = _numbers_archive()
    if len(selectors.digit_grams(q)) > 0:
        assert all(len(t) == selectors.DIGIT_GRAM for t in selectors._index_terms(q, None))
    expected = _plain_like(account, q=q)
    for plan in ("auto", "index", "scan", "portable"):
        assert _all_pages(account, limit=4, plan=plan, q=q) == expected, plan
    assert records_count(account=account, q=q) == RecordCount(len(expected))


def test_the_agent_s_term_narrows_the_index_plan_and_the_results_stay_exact(archive):
    account, agents, _openids, records = archive
    for agent in agents:
        assert selectors._index_terms("退款", agent)[-1] == f"w:{agent}"
        for q in ("退款", "你好", "hello", "不存在的词", "好"):
            expected = _plain_like(account, q=q, worker=agent)
            assert expected == _expected(records, q=q, agent=agent)
            for plan in ("auto", "index", "scan", "portable"):
                assert _all_pages(account, limit=5, plan=plan, q=q, agent=agent) == expected, (plan, q)
            assert records_count(account=account, q=q, agent=agent).count == len(expected)


@pytest.mark.parametrize(
    ("share", "plan"),
    [
        # A busy agent: scanning their rows finds a page sooner than the index plan
        # would read the word's candidates of that agent.
        (0.5, "probe"),
        # A quiet agent: few of the word's records are theirs, the index plan reads them.
        (0.00001, "index"),
    ],
)
def test_an_agent_filtered_search_probes_or_asks_the_index_by_the_agent_s_share(archive, monkeypatch, share, plan):
    account, agents, _openids, records = archive
    agent = agents[0]
    # Statistics as a big archive would have them: the word in 10 % of 10 M records.
    stats = ({"退款": 0.1, f"w:{agent}": share}, 0.000001, 10_000_000.0)
    monkeypatch.setattr(selectors, "_term_stats", lambda: stats)
    page = records_search(account=account, q="退款", agent=agent, limit=5)
    assert page.plan == plan
    assert _all_pages(account, limit=5, plan="auto", q="退款", agent=agent) == _plain_like(
        account, q="退款", worker=agent
    )


def test_a_number_is_never_probed_for_when_the_statistics_list_its_digit_bigrams_as_common(monkeypatch):
    account = _numbers_archive()
    digits = {f"{a}{b}": 0.05 for a in "0123456789" for b in "0123456789"}
    # A small archive's statistics: even the least common listed term is frequent.
    monkeypatch.setattr(selectors, "_term_stats", lambda: (digits, 0.04, 1_000_000.0))
    page = records_search(account=account, q="202512070001", limit=3)
    assert page.plan == "index"
    assert _all_pages(account, limit=3, plan="auto", q="202512070001") == _plain_like(account, q="202512070001")

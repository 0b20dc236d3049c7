"""Reads of the chat archive: search with keyset pagination, a streaming export, one
customer's conversation (timeline, reply window less the queued sends) and the sends.

Search semantics (the same on PostgreSQL and SQLite): a record matches `q` when its
text contains `q` as a substring, with ASCII letters compared case-insensitively
(A-Z only, whatever the database locale: Chinese has no case, and folding only ASCII
keeps the index function IMMUTABLE and both backends identical). `%`, `_` and `\\`
in `q` are literal characters. Leading and trailing whitespace of `q` is ignored.

Results come newest first, ordered by `(time, id)`; a page's `next_cursor` is an
opaque string holding the last record's `(time, id)`, and the next page continues
strictly after it with a row comparison, so pages neither skip nor repeat records
even when many share one timestamp, and any depth costs the same.

How PostgreSQL answers a text query (see docs/performance.md for measurements):

- The GIN index `record_terms` (migration 0009) holds each record's search terms
  (`messaging_record_terms(text, worker)`): the bigrams of its text (ASCII letters
  folded to lower case), every 6-digit substring of a run of 6+ digits, and
  `w:<kf account>` when the record has an agent. It only proposes candidates: `LIKE`
  and the other filters recheck every one, so results are exact.
- "index" plan: the rows holding the query's most selective terms (two 6-digit
  substrings of a long number, else the three rarest bigrams; plus the agent's term
  when the search is filtered by agent), rechecked, top-N sorted. Cost grows with the
  number of candidates, so it is the plan for rare words (and any word of a quiet agent).
- "scan" plan: walk the `(account, time, id)` index (or the openid/agent index)
  newest first from the cursor and filter with `LIKE`; it stops after `limit`
  matches, so it is the plan for common words, whose matches are dense.
- "auto" (default) picks from a cheap estimate: the terms' frequencies in the planner
  statistics of the GIN index (`pg_stats.most_common_elems`, cached per process);
  the rarest term bounds the query's frequency from above. If the query looks common
  it first runs the scan capped at `PROBE_ROWS` rows; when that finds a full page (or
  exhausts the filtered rows) it is the answer, otherwise the index plan runs. The cap
  sits near the break-even point (a scan reads about 1 µs per row, the index plan
  costs about 2 µs per match), so neither plan is ever far from the better one, and
  the index never has to sort a million matches. Filtered by agent, the probe reads
  the agent's rows (one heap page each) and the index plan only the candidates of
  that agent: the probe runs only when it should read fewer rows than the index plan
  has candidates (the agent's share times the word's matches).
- A 1-character query has no term: the capped scan, then the full scan (fast
  when the character is common or other filters narrow the rows; a rare single
  character over a whole archive reads the whole account's records).
"""

from __future__ import annotations

import base64
import binascii
import re
import time as _time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import (
    BooleanField,
    Count,
    DateTimeField,
    Exists,
    F,
    Func,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.db.models.lookups import IsNull
from django.utils import timezone

from accounts.models import Agent, OfficialAccount, SyncState
from accounts.selectors import agent_names
from messaging.models import (
    SEND_STALE_AFTER,
    ConversationSeen,
    ExportJob,
    LibraryItem,
    MediaFile,
    MessageRecord,
    OutboundMessage,
    QuickReply,
    QuickReplyUse,
    archive_text,
)
from sessions_app.models import Customer, KfSession
from sessions_app.selectors import WindowState, customer_sessions, customer_window_state

# Record kinds a reviewer filters by.
KINDS: dict[str, frozenset[int]] = {
    "customer": MessageRecord.OperCode.CUSTOMER,
    "agent": MessageRecord.OperCode.AGENT,
    "session": MessageRecord.OperCode.SESSION_EVENTS,
}

PLANS = ("auto", "index", "scan", "portable")
# The capped scan of the "auto" plan reads at most this many rows before giving up
# and asking the GIN index instead (see the module docstring; measured in
# docs/performance.md).
PROBE_ROWS = 30000
# Bigrams the index plan asks the GIN index for (the rarest; LIKE checks the rest).
INDEX_BIGRAMS = 3
# Runs of at least this many ASCII digits are indexed by their substrings of this length.
DIGIT_GRAM = 6
# How long a process trusts the bigram frequencies it read from pg_stats.
STATS_TTL_SECONDS = 600

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_COLUMNS = 'id, official_account_id, "time", worker, openid, opercode, "text", digest, seq, source, created_at'
_FOLDED_TEXT = 'lower("text" COLLATE "C")'
_TERMS = 'messaging_record_terms("text", worker)'
_DIGIT_RUN = re.compile(rf"[0-9]{{{DIGIT_GRAM},}}")


@dataclass(frozen=True)
class RecordPage:
    """One page of search results, newest first; `next_cursor` is None on the last page.

    `plan` names how PostgreSQL answered ("index", "scan", "probe" or "filter"), for
    benchmarks and debugging.
    """

    records: list[MessageRecord]
    next_cursor: str | None
    plan: str = "filter"


# ----------------------------------------------------------------- helpers


def ascii_fold(text: str) -> str:
    """Lower-case ASCII letters only, exactly like `lower(text COLLATE "C")`."""
    return text.translate(_ASCII_LOWER)


def text_bigrams(text: str) -> list[str]:
    """The distinct 2-character substrings of the folded text, as the index stores them."""
    folded = ascii_fold(text)
    return sorted({folded[i : i + 2] for i in range(len(folded) - 1)})


def digit_grams(text: str) -> list[str]:
    """The distinct DIGIT_GRAM-digit substrings of the text's runs of ASCII digits."""
    return sorted(_digit_grams_in_order(text))


def _digit_grams_in_order(text: str) -> list[str]:
    grams = (run[i : i + DIGIT_GRAM] for run in _DIGIT_RUN.findall(text) for i in range(len(run) - DIGIT_GRAM + 1))
    return list(dict.fromkeys(grams))


def worker_term(worker: str) -> str:
    """The index term of the records of this kf account."""
    return f"w:{worker}"


def record_terms(text: str, worker: str) -> list[str]:
    """What the `record_terms` index stores for a record (`messaging_record_terms`)."""
    return sorted({*text_bigrams(text), *digit_grams(text), *([worker_term(worker)] if worker else [])})


def like_contains_pattern(text: str) -> str:
    """A LIKE pattern (escape character backslash) matching `text` as a substring."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def cursor_encode(time: datetime, record_id: int) -> str:
    """The opaque cursor for "after the record at (time, id)"."""
    micros = (time - _EPOCH) // timedelta(microseconds=1)
    raw = f"{micros}:{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[datetime, int]:
    """(time, id) from a cursor made by `cursor_encode`; ValueError if it is not one."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 64:
        raise ValueError("Malformed search cursor: expected a short opaque string.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros_text, id_text = raw.split(":")
        micros, record_id = int(micros_text), int(id_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(f"Malformed search cursor {cursor!r}.") from None
    if record_id < 1 or not micros_text.lstrip("-").isdigit() or not id_text.isdigit():
        raise ValueError(f"Malformed search cursor {cursor!r}.")
    try:
        time = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise ValueError(f"Malformed search cursor {cursor!r}.") from None
    return time, record_id


def kinds_opercodes(kinds: Iterable[str] | None) -> tuple[int, ...] | None:
    """The opercodes of the given kinds ("customer", "agent", "session"), or None for all."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    codes: set[int] = set()
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"Unknown record kind {kind!r}; use one of {', '.join(KINDS)}.")
        codes.update(KINDS[kind])
    return tuple(sorted(codes))


class AsciiLower(Func):
    """`lower()` that folds ASCII letters only, on every backend."""

    function = "LOWER"
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler, connection, template='LOWER(%(expressions)s COLLATE "C")', **extra_context
        )


@dataclass(frozen=True)
class RecordFilter:
    """What a person asks the archive for, as the history page's filters say it: the
    search, its count, the export and the export's audit entry take this one object.

    `q` is a substring (see the module docstring); `agent` an Agent or a full kf
    account; `since` inclusive, `until` exclusive; `kinds` any of "customer",
    "agent", "session".
    """

    q: str | None = None
    agent: Agent | str | None = None
    openid: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    kinds: Iterable[str] | None = None

    def given(self) -> dict[str, object]:
        """The filters that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def as_json(self) -> dict[str, object]:
        """The filters that are set, as JSON values (the agent by its kf account, times
        in ISO 8601): what the audit log and an export job keep."""
        return {name: _jsonable(value) for name, value in self.given().items()}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RecordFilter:
        """The filter `as_json` describes."""
        values = dict(data)
        for name in ("since", "until"):
            if isinstance(values.get(name), str):
                values[name] = datetime.fromisoformat(str(values[name]))
        if values.get("kinds") is not None:
            values["kinds"] = tuple(values["kinds"])  # type: ignore[arg-type]
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})  # type: ignore[arg-type]


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Agent):
        return value.kf_account
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def _record_filter(filters: RecordFilter | None, criteria: dict[str, object]) -> RecordFilter:
    """`filters`, or the same object built from keyword criteria (`q=`, `agent=`, …),
    the shorter spelling for scripts and tests."""
    if filters is None:
        # Keyword criteria for scripts and tests: RecordFilter refuses an unknown name.
        return RecordFilter(**criteria)  # type: ignore[arg-type]
    if criteria:
        raise TypeError("Give either filters or keyword criteria, not both.")
    return filters


@dataclass(frozen=True)
class _Filters:
    account_id: int
    query: str  # folded; "" for no text filter
    worker: str | None
    openid: str | None
    since: datetime | None
    until: datetime | None
    opercodes: tuple[int, ...] | None

    def where(self) -> tuple[list[str], list]:
        """SQL conditions (without the text) and their parameters."""
        clauses = ["official_account_id = %s"]
        params: list = [self.account_id]
        if self.worker is not None:
            clauses.append("worker = %s")
            params.append(self.worker)
        if self.openid is not None:
            clauses.append("openid = %s")
            params.append(self.openid)
        if self.since is not None:
            clauses.append('"time" >= %s')
            params.append(self.since)
        if self.until is not None:
            clauses.append('"time" < %s')
            params.append(self.until)
        if self.opercodes is not None:
            clauses.append("opercode = ANY(%s)")
            params.append(list(self.opercodes))
        return clauses, params

    def queryset(self) -> QuerySet[MessageRecord]:
        """The same filters with the ORM (text included)."""
        qs = MessageRecord.objects.filter(official_account_id=self.account_id)
        if self.worker is not None:
            qs = qs.filter(worker=self.worker)
        if self.openid is not None:
            qs = qs.filter(openid=self.openid)
        if self.since is not None:
            qs = qs.filter(time__gte=self.since)
        if self.until is not None:
            qs = qs.filter(time__lt=self.until)
        if self.opercodes is not None:
            qs = qs.filter(opercode__in=self.opercodes)
        if self.query:
            if connection.vendor == "postgresql" and len(self.query) >= 2:
                # Lets the planner use the GIN index when the word is rare.
                qs = qs.filter(
                    RawSQL(f"{_TERMS} @> %s::text[]", (_index_terms(self.query, self.worker),),
                           output_field=BooleanField())
                )
            qs = qs.alias(folded_text=AsciiLower("text")).filter(folded_text__contains=self.query)
        return qs


def _filters(account: OfficialAccount | int, asked: RecordFilter) -> _Filters | None:
    """Normalised filters, or None when nothing can match."""
    query = ascii_fold((asked.q or "").strip())
    if "\x00" in query:
        return None  # PostgreSQL text cannot hold NUL, so no record contains it
    agent = asked.agent
    worker = agent.kf_account if isinstance(agent, Agent) else (agent or None)
    return _Filters(
        account_id=account.pk if isinstance(account, OfficialAccount) else int(account),
        query=query,
        worker=worker,
        openid=asked.openid or None,
        since=asked.since,
        until=asked.until,
        opercodes=kinds_opercodes(asked.kinds),
    )


# ------------------------------------------------------------------ search


def records_search(
    *,
    account: OfficialAccount | int,
    filters: RecordFilter | None = None,
    after_cursor: str | None = None,
    limit: int = 50,
    plan: str = "auto",
    **criteria: object,
) -> RecordPage:
    """One page of the account's archived records matching `filters` (or the
    `RecordFilter` fields given as `criteria`), newest first.

    `after_cursor` is the previous page's `next_cursor` (ValueError if malformed). `plan` forces a PostgreSQL plan ("index", "scan", or "portable":
    the ORM query SQLite runs) for benchmarks and tests; the results are identical
    whatever the plan.
    """
    if not 1 <= limit <= 1000:
        raise ValueError("limit must be between 1 and 1000.")
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {', '.join(PLANS)}.")
    after = cursor_decode(after_cursor) if after_cursor is not None else None
    normalised = _filters(account, _record_filter(filters, criteria))
    if normalised is None:
        return RecordPage([], None)
    if connection.vendor == "postgresql" and plan != "portable":
        rows, used = _search_postgresql(normalised, after, limit, plan)
    else:
        rows, used = _search_portable(normalised, after, limit), "filter"
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursor_encode(rows[-1].time, rows[-1].pk)
    return RecordPage(rows, next_cursor, used)


def _search_portable(
    filters: _Filters, after: tuple[datetime, int] | None, limit: int
) -> list[MessageRecord]:
    qs = filters.queryset()
    if after is not None:
        t, i = after
        qs = qs.filter(Q(time__lt=t) | Q(time=t, id__lt=i))
    return list(qs.order_by("-time", "-id")[: limit + 1])


def _search_postgresql(
    filters: _Filters, after: tuple[datetime, int] | None, limit: int, plan: str
) -> tuple[list[MessageRecord], str]:
    clauses, params = filters.where()
    if after is not None:
        clauses.append('("time", id) < (%s, %s)')
        params.extend(after)
    query = filters.query
    if not query:
        return _run(
            f"SELECT {_COLUMNS} FROM messaging_messagerecord WHERE {' AND '.join(clauses)} "
            'ORDER BY "time" DESC, id DESC LIMIT %s',
            [*params, limit + 1],
        ), "filter"
    pattern = like_contains_pattern(query)
    terms = [*text_bigrams(query), *digit_grams(query)]
    if filters.opercodes is not None and all(MessageRecord.OperCode.is_session_event(c) for c in filters.opercodes):
        # Session events carry no text (WeChat gives them none), so a text query over
        # them alone matches nothing; without this the probe reads its 30,000 rows
        # and the index plan then every record holding a common word, to find none.
        # The partial index record_event_text makes the check free, and exact.
        if not _session_events_have_text(filters.account_id):
            return [], "empty"
    if plan == "auto":
        if not terms or _probe_first(terms, filters.worker, limit):
            rows = _probe(clauses, params, pattern, limit)
            if rows is not None:
                return rows, "probe"
        plan = "index" if terms else "scan"
    if plan == "index" and terms:
        return _run(
            f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS} FROM messaging_messagerecord "
            f"WHERE {' AND '.join(clauses)} AND {_TERMS} @> %s::text[] "
            f"AND {_FOLDED_TEXT} LIKE %s OFFSET 0) AS matches "
            # OFFSET 0 keeps the ORDER BY/LIMIT outside, so the planner cannot swap
            # the GIN lookup for a walk of the time index.
            'ORDER BY "time" DESC, id DESC LIMIT %s',
            [*params, _index_terms(query, filters.worker), pattern, limit + 1],
        ), "index"
    return _run(
        f"SELECT {_COLUMNS} FROM messaging_messagerecord WHERE {' AND '.join(clauses)} "
        f'AND {_FOLDED_TEXT} LIKE %s ORDER BY "time" DESC, id DESC LIMIT %s',
        [*params, pattern, limit + 1],
    ), "scan"


def _probe(
    clauses: list[str], params: list, pattern: str, limit: int
) -> list[MessageRecord] | None:
    """The newest-first scan capped at PROBE_ROWS rows; None if that cannot decide.

    Besides the matches it returns the PROBE_ROWS-th row as a sentinel: if the scan
    reached it without a full page, older matches may exist and the index must answer.
    """
    rows = _run(
        f"SELECT * FROM (SELECT {_COLUMNS}, {_FOLDED_TEXT} LIKE %s AS hit, "
        'row_number() OVER (ORDER BY "time" DESC, id DESC) AS rn '
        f"FROM messaging_messagerecord WHERE {' AND '.join(clauses)} "
        'ORDER BY "time" DESC, id DESC LIMIT %s) AS scanned '
        'WHERE hit OR rn = %s ORDER BY "time" DESC, id DESC LIMIT %s',
        [pattern, *params, PROBE_ROWS, PROBE_ROWS, limit + 1],
    )
    # `hit` and `rn` are columns of the query above, not fields of the model.
    hits = [row for row in rows if row.hit]  # type: ignore[attr-defined]
    if len(hits) > limit or not any(row.rn == PROBE_ROWS for row in rows):  # type: ignore[attr-defined]
        return hits
    return None


def _run(sql: str, params: Sequence) -> list[MessageRecord]:
    return list(MessageRecord.objects.raw(sql, params))


# Term frequencies from the planner statistics: (read at, {term: fraction}, the
# smallest listed fraction, the archive's estimated rows). Empty until ANALYZE has run.
_stats_cache: dict[str, tuple[float, dict[str, float], float, float]] = {}


def _term_stats() -> tuple[dict[str, float], float, float]:
    key = connection.alias
    cached = _stats_cache.get(key)
    now = _time.monotonic()
    if cached is not None and now - cached[0] < STATS_TTL_SECONDS:
        return cached[1], cached[2], cached[3]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = 'record_terms'"
        )
        row = cursor.fetchone()
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'messaging_messagerecord'::regclass")
        size = cursor.fetchone()
    freqs: dict[str, float] = {}
    floor = 0.0
    if row is not None and row[0] is not None:
        elems, fractions = row
        freqs = dict(zip(elems, fractions, strict=False))
        # The array ends with the minimum, maximum and null fractions.
        floor = fractions[len(elems)] if len(fractions) > len(elems) else min(fractions)
    rows = max(float(size[0]), 0.0) if size is not None else 0.0
    _stats_cache[key] = (now, freqs, floor, rows)
    return freqs, floor, rows


def _term_frequencies() -> tuple[dict[str, float], float]:
    """{term: fraction of records holding it} for the most common terms, and the
    smallest listed fraction (every unlisted term is rarer)."""
    freqs, floor, _rows = _term_stats()
    return freqs, floor


def _probe_first(terms: list[str], worker: str | None, limit: int) -> bool:
    """Whether the capped scan should run first: PROBE_ROWS rows probably hold more
    than `limit` matches (every term is frequent enough), and, filtered by agent, the
    scan of the agent's rows should read fewer rows than the index plan has
    candidates. Without statistics (a new archive, never analysed) the answer is yes:
    the probe is cheap on small tables and the index still answers when it cannot
    decide."""
    freqs, floor, rows = _term_stats()
    if not freqs:
        return True
    # The rarest term bounds the query's frequency from above. An unlisted bigram is
    # taken at half the smallest listed frequency (as the planner does); an unlisted
    # 6-digit substring (one of a million) as absent, so a long number goes straight
    # to the index, whatever its digit bigrams' frequencies.
    density = min(freqs.get(t, 0.0 if len(t) == DIGIT_GRAM and t.isdigit() else floor / 2) for t in terms)
    if density <= 0:
        return False
    scanned = (limit + 1) / density
    if scanned > PROBE_ROWS:
        return False
    if worker is None:
        return True
    # The agent's rows are scattered over the heap as the index plan's candidates
    # are: one page each, so compare the counts. (Assumes words and agents independent.)
    share = freqs.get(worker_term(worker), floor / 2)
    return scanned <= density * share * rows


def _index_terms(query: str, worker: str | None) -> list[str]:
    """The terms the index plan asks the GIN index for: two 6-digit substrings of the
    query's longest digit run when it has one (a few records share them), else its
    INDEX_BIGRAMS rarest bigrams by the statistics (LIKE rechecks every candidate, and
    each further term is one more posting list to read); plus the agent's term."""
    grams = _digit_grams_in_order(query)
    if grams:
        asked = list(dict.fromkeys([grams[0], grams[-1]]))
    else:
        asked = _rarest_bigrams(text_bigrams(query), INDEX_BIGRAMS)
    if worker:
        asked.append(worker_term(worker))
    return asked


def _rarest_bigrams(bigrams: list[str], count: int) -> list[str]:
    """The `count` rarest of `bigrams` by the statistics (unlisted ones are rarest)."""
    if len(bigrams) <= count:
        return bigrams
    freqs, floor = _term_frequencies()
    return sorted(bigrams, key=lambda b: (freqs.get(b, floor / 2), b))[:count]


def _session_events_have_text(account_id: int) -> bool:
    # The planner, expecting the clause to match one row in ten (it cannot know that
    # events and texts exclude each other), would rather read the table until it
    # finds one: 4 s at 10 M rows. Without sequential scans it reads the partial
    # index, which is empty: 0.1 ms.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM messaging_messagerecord WHERE official_account_id = %s "
            "AND opercode < 2000 AND \"text\" <> '')",
            [account_id],
        )
        return bool(cursor.fetchone()[0])


def search_stats_forget() -> None:
    """Drop the cached term statistics (after ANALYZE, in benchmarks and tests)."""
    _stats_cache.clear()


# ------------------------------------------------------------------ count

# The history page counts matches up to this many and shows "more than" beyond: an
# exact count of a common word over millions of records reads every match.
COUNT_CAP = 1000
# ... and gives up (shows no count) rather than slow the search down.
COUNT_TIMEOUT_MS = 300
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout


@dataclass(frozen=True)
class RecordCount:
    """How many records match: `count` exactly, or more than `count` when `more`.
    `count` is None when counting took too long."""

    count: int | None
    more: bool = False


def records_count(
    *,
    account: OfficialAccount | int,
    filters: RecordFilter | None = None,
    cap: int = COUNT_CAP,
    **criteria: object,
) -> RecordCount:
    """The number of records `records_search` with the same filters pages through,
    counted up to `cap` (so its cost is bounded by `cap` matches, not the archive)."""
    normalised = _filters(account, _record_filter(filters, criteria))
    if normalised is None:
        return RecordCount(0)
    capped = normalised.queryset().order_by()[: cap + 1]
    if connection.vendor != "postgresql":
        found = capped.count()
    else:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL statement_timeout = {int(COUNT_TIMEOUT_MS)}")
                found = capped.count()
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != QUERY_CANCELED:
                raise
            # Cancelled by the timeout; the savepoint's rollback restored the setting.
            return RecordCount(None)
    return RecordCount(min(found, cap), more=found > cap)


# ------------------------------------------------------------------ export


def records_iter_export(
    *,
    account: OfficialAccount | int,
    filters: RecordFilter | None = None,
    newest_first: bool = False,
    chunk_size: int = 2000,
    **criteria: object,
) -> Iterator[MessageRecord]:
    """Every matching record, oldest first by default, streamed in chunks.

    Same filters and text semantics as `records_search`. On PostgreSQL it reads
    through a server-side cursor, so an export of millions of rows holds one chunk
    in memory.
    """
    normalised = _filters(account, _record_filter(filters, criteria))
    if normalised is None:
        return iter(())
    order = ("-time", "-id") if newest_first else ("time", "id")
    return normalised.queryset().order_by(*order).iterator(chunk_size=chunk_size)


EXPORT_COLUMNS_READ = ("time", "opercode", "worker", "openid", "text")


def records_iter_export_rows(
    *, account: OfficialAccount | int, filters: RecordFilter, chunk_size: int = 5000
) -> Iterator[tuple]:
    """What an export writes, oldest first: (time, opercode, worker, openid, text)
    tuples through a server-side cursor on PostgreSQL (no model instances, one chunk
    in memory)."""
    normalised = _filters(account, filters)
    if normalised is None:
        return iter(())
    return normalised.queryset().order_by("time", "id").values_list(*EXPORT_COLUMNS_READ).iterator(
        chunk_size=chunk_size
    )


def records_export_total(*, account: OfficialAccount | int, filters: RecordFilter) -> int:
    """How many records an export of `filters` holds: an exact count, for its
    progress (a background job's, so no cap and no timeout)."""
    normalised = _filters(account, filters)
    if normalised is None:
        return 0
    return normalised.queryset().order_by().count()


# --------------------------------------------------------------- export jobs


def export_jobs_visible(
    *, account: OfficialAccount, user_id: int | None, everyone: bool, limit: int = 50
) -> list[ExportJob]:
    """The account's export jobs a person may see, newest first: their own, or
    (`everyone`: supervisors and auditors, who may read the whole archive anyway)
    every job of the account."""
    jobs = ExportJob.objects.filter(official_account=account).select_related("requested_by")
    if not everyone:
        jobs = jobs.filter(requested_by_id=user_id)
    return list(jobs.order_by("-created_at", "-id")[:limit])


def export_job_visible(*, account: OfficialAccount, user_id: int | None, everyone: bool, job_id: int) -> ExportJob | None:
    """One job, if the person may see (and download) it; see `export_jobs_visible`."""
    jobs = ExportJob.objects.filter(official_account=account, pk=job_id)
    if not everyone:
        jobs = jobs.filter(requested_by_id=user_id)
    return jobs.first()


# --------------------------------------------------------------- customers



def session_last_customer_text() -> Subquery:
    """What the customer of each row of a KfSession queryset last wrote (the queue's
    and the board's preview; sessions_app takes it through `session_preview_provide`)."""
    return Subquery(
        MessageRecord.objects.filter(
            official_account=OuterRef("official_account"),
            openid=OuterRef("customer__openid"),
            opercode__in=MessageRecord.OperCode.CUSTOMER,
        )
        .order_by("-time", "-id")
        .values("text")[:1]
    )


def customer_open_to_agent(*, customer: Customer | None, openid: str, account: OfficialAccount, agent: Agent) -> bool:
    """Whether an agent may open this customer's conversation: the customer waits for
    anyone to take them, or the agent served them (a session with them, or a record
    naming them as the worker). Agents see only these customers."""
    if customer is not None and (
        KfSession.objects.filter(customer=customer)
        .filter(Q(state=KfSession.State.WAITING) | Q(agent=agent))
        .exists()
    ):
        return True
    return MessageRecord.objects.filter(official_account=account, openid=openid, worker=agent.kf_account).exists()


def customer_known(*, account: OfficialAccount, openid: str) -> bool:
    return MessageRecord.objects.filter(official_account=account, openid=openid).exists()


def outbound_pending(*, customer: Customer) -> int:
    """Messages to `customer` queued or being sent: each will use one send of the window."""
    return OutboundMessage.objects.filter(
        customer=customer, status__in=(OutboundMessage.Status.QUEUED, OutboundMessage.Status.SENDING)
    ).count()


def customer_window(*, customer: Customer | None, now: datetime | None = None) -> WindowState:
    """The customer's reply window (sessions_app's reader) less the sends already
    queued or being sent from here."""
    pending = outbound_pending(customer=customer) if customer is not None else 0
    return customer_window_state(customer=customer, pending=pending, now=now)


# --------------------------------------------------------------- conversation


TIMELINE_LIMIT = 100


@dataclass(frozen=True)
class TimelineItem:
    """One line of a conversation: an archived record, or a message sent from kfadmin
    (with its status; its copy in the archive is then not shown twice)."""

    time: datetime
    record: MessageRecord | None = None
    outbound: OutboundMessage | None = None
    # The agent's nickname for a record's worker (kf account), when kfadmin knows it.
    worker_name: str = ""

    @property
    def event_label(self) -> str:
        """For a session event record: what happened, in words."""
        return self.record.opercode_label if self.record is not None else ""

    @property
    def sort_key(self) -> tuple:
        source = self.record if self.record is not None else self.outbound
        assert source is not None, "a timeline item is a record or a send"
        pk = source.pk
        return (self.time, 0 if self.record is not None else 1, pk)


@dataclass(frozen=True)
class Timeline:
    items: list[TimelineItem]
    earlier_cursor: str | None  # there are older records: continue before this one
    is_latest: bool  # shows the newest records (and may poll for more)
    focus_id: int | None = None


def _window_records(account: OfficialAccount, openid: str) -> QuerySet[MessageRecord]:
    return MessageRecord.objects.filter(official_account=account, openid=openid)


def customer_last_archived_message_at(*, account: OfficialAccount, openid: str):
    """When the archive (the conversation's timeline) last shows the customer writing,
    or None: the page's notes about the customer say what the timeline shows."""
    return (
        _window_records(account, openid)
        .filter(opercode__in=MessageRecord.OperCode.CUSTOMER)
        .order_by("-time")
        .values_list("time", flat=True)
        .first()
    )


def conversation_timeline(
    *,
    account: OfficialAccount,
    openid: str,
    customer: Customer | None,
    before: str | None = None,
    at_record: int | None = None,
    limit: int = TIMELINE_LIMIT,
) -> Timeline:
    """The archive of one customer in time order, with the messages sent from kfadmin.

    Default: the newest `limit` records. `before` (a cursor from `earlier_cursor`):
    the `limit` records before it. `at_record`: the records around that one (a
    history search result), which is then `focus_id`. ValueError for a bad cursor.
    """
    records_qs = _window_records(account, openid)
    focus_id = None
    newer: list[MessageRecord] = []
    if at_record is not None:
        anchor = records_qs.filter(pk=at_record).first()
        if anchor is None:
            at_record = None
        else:
            focus_id = anchor.pk
            half = limit // 2
            older = list(
                records_qs.filter(Q(time__lt=anchor.time) | Q(time=anchor.time, id__lte=anchor.pk))
                .order_by("-time", "-id")[: half + 1]
            )
            newer = list(
                records_qs.filter(Q(time__gt=anchor.time) | Q(time=anchor.time, id__gt=anchor.pk))
                .order_by("time", "id")[: half + 1]
            )
            is_latest = len(newer) <= half
            newer = newer[:half]
            page = older
            page_limit = half
    if at_record is None:
        qs = records_qs
        if before:
            t, i = cursor_decode(before)
            qs = qs.filter(Q(time__lt=t) | Q(time=t, id__lt=i))
        page = list(qs.order_by("-time", "-id")[: limit + 1])
        page_limit = limit
        is_latest = not before
    earlier_cursor = None
    if len(page) > page_limit:
        page = page[:page_limit]
        earlier_cursor = cursor_encode(page[-1].time, page[-1].pk)
    records = list(reversed(page)) + newer
    names = agent_names(account=account, kf_accounts={r.worker for r in records if r.worker})
    items = [TimelineItem(time=r.time, record=r, worker_name=names.get(r.worker, r.worker)) for r in records]

    if customer is not None:
        outbound_qs = OutboundMessage.objects.filter(customer=customer)
        if earlier_cursor is not None and records:
            outbound_qs = outbound_qs.filter(created_at__gte=records[0].time)
        if not is_latest and records:
            outbound_qs = outbound_qs.filter(created_at__lte=records[-1].time)
        outbound = list(
            outbound_qs.select_related("agent", "media", "thumb").order_by("-created_at", "-id")[:limit]
        )
        hidden = _archived_copies(records, outbound, keep=focus_id)
        items = [item for item in items if item.record is None or item.record.pk not in hidden]
        items += [TimelineItem(time=o.created_at, outbound=o) for o in outbound]
        _library_items_attach(account, outbound)
    _record_media_attach(records)
    items.sort(key=lambda item: item.sort_key)
    return Timeline(items=items, earlier_cursor=earlier_cursor, is_latest=is_latest, focus_id=focus_id)


# The library kinds an id sent in each message type can be (a send by id, not a kept file).
LIBRARY_KINDS_BY_MSGTYPE: dict[str, tuple[str, ...]] = {
    "image": (LibraryItem.Kind.IMAGE,),
    "voice": (LibraryItem.Kind.VOICE,),
    "video": (LibraryItem.Kind.VIDEO,),
    "mpnews": (LibraryItem.Kind.NEWS,),
    "mpnewsarticle": (LibraryItem.Kind.ARTICLE,),
}


def outbound_library_ident(outbound: OutboundMessage) -> str:
    """The library id a message was sent by ("" when it sends a kept file or no id)."""
    if outbound.msgtype not in LIBRARY_KINDS_BY_MSGTYPE or outbound.media_id is not None:
        return ""
    payload = outbound.payload or {}
    ident = payload.get("article_id") if outbound.msgtype == "mpnewsarticle" else payload.get("media_id")
    return str(ident or "")


def _record_media_attach(records: list[MessageRecord]) -> None:
    """Set `timeline_media` on each record: the file a customer's image or voice
    arrived with (None if kfadmin keeps none), for all records in one query (the
    `record_media` tag reads it)."""
    wanted = [r.pk for r in records if r.text in ("[image]", "[voice]") and r.is_customer_message]
    found = {m.record_id: m for m in MediaFile.objects.filter(record_id__in=wanted)} if wanted else {}
    for record in records:
        record.timeline_media = found.get(record.pk)  # type: ignore[attr-defined]


def _library_items_attach(account: OfficialAccount, outbound: list[OutboundMessage]) -> None:
    """Set `timeline_library_item` on each send: the library item it was sent by, for
    all sends in one query (the `library_item` tag reads it)."""
    wanted = {o.pk: outbound_library_ident(o) for o in outbound}
    idents = {ident for ident in wanted.values() if ident}
    found: dict[tuple[str, str], LibraryItem] = {}
    if idents:
        rows = LibraryItem.objects.filter(official_account=account, ident__in=idents)
        found = {(item.kind, item.ident): item for item in rows}
    for o in outbound:
        ident = wanted[o.pk]
        kinds = LIBRARY_KINDS_BY_MSGTYPE.get(o.msgtype, ()) if ident else ()
        o.timeline_library_item = next(  # type: ignore[attr-defined]
            (found[(kind, ident)] for kind in kinds if (kind, ident) in found), None
        )


# History sync brings a record at most about a day after it was written (24-hour
# windows); the timeline's stamp watches this far back for records arriving late.
TIMELINE_STAMP_LOOKBACK = timedelta(days=3)


def timeline_stamp(*, account: OfficialAccount, openid: str, customer: Customer | None) -> str:
    """What the newest view of a conversation was built from: the newest archived record
    of the last days (ids only grow), the newest message sent from kfadmin and how many
    of the customer's media have finished fetching (kept or given up: "Fetching…"
    changes then, although no message arrived). Equal stamps, same timeline: a poll
    that brings its stamp is answered "nothing new"."""
    since = timezone.now() - TIMELINE_STAMP_LOOKBACK
    newest_record = MessageRecord.objects.filter(official_account=account, openid=openid, time__gte=since).order_by(
        "-id"
    )
    if customer is None:
        record, sent = newest_record.values_list("id", flat=True).first(), None
    else:
        # All in one query: this runs on every poll of every open conversation.
        newest_sent = OutboundMessage.objects.filter(customer=OuterRef("pk")).order_by("-id")
        fetched = (
            MediaFile.objects.filter(customer=OuterRef("pk"), direction=MediaFile.Direction.RECEIVED)
            .exclude(state=MediaFile.State.FETCHING)
            .order_by()
            .values("customer")
            .annotate(n=Count("pk"))
            .values("n")
        )
        record, sent, media = (
            Customer.objects.filter(pk=customer.pk)
            .values_list(
                Subquery(newest_record.values("id")[:1]), Subquery(newest_sent.values("id")[:1]), Subquery(fetched)
            )
            .first()
        ) or (None, None, None)
        return f"{record or 0}.{sent or 0}.{media or 0}"
    return f"{record or 0}.{sent or 0}"


# A send and its copy in WeChat's history are this close in time (as in messaging.sync).
ARCHIVE_COPY_WINDOW = timedelta(seconds=120)


def _archived_copies(records: list[MessageRecord], outbound: list[OutboundMessage], keep: int | None) -> set[int]:
    """Ids of archived records that are copies of messages kfadmin sent (shown once,
    as the send with its status). Each send hides at most one record: same agent,
    the text WeChat's history shows for it, sent within ARCHIVE_COPY_WINDOW."""
    hidden: set[int] = set()
    candidates = [r for r in records if r.opercode in MessageRecord.OperCode.AGENT and r.pk != keep]
    for o in outbound:
        if o.status != OutboundMessage.Status.SENT or o.sent_at is None:
            continue
        text = archive_text(o.msgtype, o.payload)
        worker = o.agent.kf_account if o.agent else None
        for record in candidates:
            if (
                record.pk not in hidden
                and record.text == text
                and (worker is None or record.worker == worker)
                and abs(record.time - o.sent_at) <= ARCHIVE_COPY_WINDOW
            ):
                hidden.add(record.pk)
                break
    return hidden


def outbound_stale_before(now: datetime | None = None) -> datetime:
    """Messages created before this and still queued or sending are stuck."""
    return (now or timezone.now()) - SEND_STALE_AFTER


def outbound_get(*, account: OfficialAccount, outbound_id: int) -> OutboundMessage | None:
    return (
        OutboundMessage.objects.filter(official_account=account, pk=outbound_id)
        .select_related("customer", "agent")
        .first()
    )


# --------------------------------------------------------------- the customer panel


@dataclass(frozen=True)
class CustomerFacts:
    """What kfadmin knows of a customer, for the conversation's side panel."""

    first_seen_at: datetime | None  # the earliest of kfadmin's first sight and the archive's first record
    first_record_at: datetime | None
    last_record_at: datetime | None
    from_customer: int  # messages the customer wrote, in the archive
    from_agents: int  # messages agents sent (from kfadmin or anywhere else)
    sent_from_kfadmin: int
    sessions: list[KfSession]  # the newest sessions kfadmin recorded
    sessions_total: int


def customer_facts(*, account: OfficialAccount, openid: str, customer: Customer | None) -> CustomerFacts:
    counts = _window_records(account, openid).aggregate(
        first=Min("time"),
        last=Max("time"),
        from_customer=Count("id", filter=Q(opercode__in=MessageRecord.OperCode.CUSTOMER)),
        from_agents=Count("id", filter=Q(opercode__in=MessageRecord.OperCode.AGENT)),
    )
    sessions, sessions_total = customer_sessions(customer=customer) if customer is not None else ([], 0)
    seen = [t for t in (counts["first"], customer.first_seen_at if customer is not None else None) if t is not None]
    return CustomerFacts(
        first_seen_at=min(seen) if seen else None,
        first_record_at=counts["first"],
        last_record_at=counts["last"],
        from_customer=counts["from_customer"],
        from_agents=counts["from_agents"],
        sent_from_kfadmin=(
            OutboundMessage.objects.filter(customer=customer, status=OutboundMessage.Status.SENT).count()
            if customer is not None else 0
        ),
        sessions=sessions,
        sessions_total=sessions_total,
    )


CONVERSATION_FIND_LIMIT = 20


def conversation_find(
    *, account: OfficialAccount, openid: str, q: str, limit: int = CONVERSATION_FIND_LIMIT
) -> RecordPage:
    """Records of one conversation containing `q`, newest first (the history search's
    semantics and indexes, narrowed to the customer)."""
    return records_search(account=account, filters=RecordFilter(openid=openid, q=q), limit=limit)


def conversation_record_on_or_after(*, account: OfficialAccount, openid: str, at: datetime) -> int | None:
    """The id of the conversation's first record at or after `at`, else its last one
    before (a day with nothing shows the nearest messages), else None."""
    records = _window_records(account, openid)
    after = records.filter(time__gte=at).order_by("time", "id").values_list("id", flat=True).first()
    if after is not None:
        return after
    return records.filter(time__lt=at).order_by("-time", "-id").values_list("id", flat=True).first()


# --------------------------------------------------------------- quick replies


QUICK_REPLY_PICK_LIMIT = 30


def quick_replies_visible(*, account: OfficialAccount, user) -> QuerySet[QuickReply]:
    """The account's shared replies and the person's own."""
    return QuickReply.objects.filter(official_account=account).filter(Q(owner__isnull=True) | Q(owner=user))


def _reply_search(replies: QuerySet[QuickReply], q: str) -> QuerySet[QuickReply]:
    q = " ".join(q.split())
    if not q:
        return replies
    return replies.filter(Q(title__icontains=q) | Q(payload__content__icontains=q))


def quick_replies_pick(
    *, account: OfficialAccount, user, q: str = "", limit: int = QUICK_REPLY_PICK_LIMIT
) -> list[QuickReply]:
    """What the composer's picker lists: the replies matching `q`, the ones this
    person picks most first (each with `use_count`), then by title."""
    uses = QuickReplyUse.objects.filter(reply=OuterRef("pk"), user=user).values("count")[:1]
    replies = _reply_search(quick_replies_visible(account=account, user=user), q).annotate(
        use_count=Coalesce(Subquery(uses, output_field=IntegerField()), Value(0))
    )
    return list(replies.order_by("-use_count", "title", "id")[:limit])


QUICK_REPLY_SCOPES = ("all", "shared", "mine")


def quick_replies_list(*, account: OfficialAccount, user, q: str = "", scope: str = "all") -> QuerySet[QuickReply]:
    """The management page's list: shared replies first, then the person's own, by title."""
    replies = _reply_search(quick_replies_visible(account=account, user=user), q)
    if scope == "shared":
        replies = replies.filter(owner__isnull=True)
    elif scope == "mine":
        replies = replies.filter(owner=user)
    return replies.select_related("owner").order_by(F("owner").asc(nulls_first=True), "title", "id")


def quick_reply_get(*, account: OfficialAccount, user, reply_id: int) -> QuickReply | None:
    """One reply the person sees (shared, or their own); None otherwise."""
    return quick_replies_visible(account=account, user=user).filter(pk=reply_id).first()
# --------------------------------------------------------------- live tail


def tail_accounts_due(*, now: datetime | None = None) -> list[int]:
    """Active accounts the live tail reads now: those with an open session or a
    conversation open in a browser (`SyncState.watched_until`), less those WeChat's
    quota refusal paused (`paused_until`). One query, every few seconds."""
    now = now or timezone.now()
    tail = SyncState.objects.filter(official_account=OuterRef("pk"), job=SyncState.Job.TAIL)
    return list(
        OfficialAccount.objects.filter(is_active=True)
        .filter(
            Exists(KfSession.objects.filter(official_account=OuterRef("pk"), state=KfSession.State.OPEN))
            | Exists(tail.filter(watched_until__gt=now))
        )
        .exclude(Exists(tail.filter(paused_until__gt=now)))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


@dataclass(frozen=True)
class RecordsFreshness:
    """Up to when kfadmin holds WeChat's records of an account (what a page may
    claim), and whether the live tail is keeping them current."""

    as_of: datetime | None
    live: bool
    paused_until: datetime | None = None


def records_freshness(*, account: OfficialAccount, now: datetime | None = None) -> RecordsFreshness:
    """The later of the tail's and the history sync's "stored up to" instants. The
    tail counts as live when it stored within a few of its intervals."""
    now = now or timezone.now()
    rows = dict(
        SyncState.objects.filter(official_account=account, job__in=(SyncState.Job.TAIL, SyncState.Job.HISTORY))
        .values_list("job", "cursor")
    )
    paused = (
        SyncState.objects.filter(official_account=account, job=SyncState.Job.TAIL, paused_until__gt=now)
        .values_list("paused_until", flat=True)
        .first()
    )
    tail, history = rows.get(SyncState.Job.TAIL), rows.get(SyncState.Job.HISTORY)
    as_of = max((t for t in (tail, history) if t is not None), default=None)
    live = tail is not None and now - tail <= timedelta(seconds=3 * settings.SYNC_TAIL_SECONDS + 5)
    return RecordsFreshness(as_of=as_of, live=live and paused is None, paused_until=paused)


# --------------------------------------------------------------- inbox

INBOX_LIMIT = 100
# The customer's unanswered messages are looked for this far back (the reply window).
UNANSWERED_LOOKBACK = timedelta(hours=48)


@dataclass
class InboxRow:
    session: KfSession
    last_text: str
    last_time: datetime | None
    last_from_customer: bool
    # The customer's first message not answered yet (None: answered, or silent).
    waiting_since: datetime | None
    unread: int
    waited: timedelta | None = None
    over: bool = False  # waited past the account's unanswered threshold


@dataclass
class Inbox:
    rows: list[InboxRow]
    total: int
    threshold: timedelta

    @property
    def unread(self) -> int:
        return sum(row.unread for row in self.rows)

    @property
    def over(self) -> int:
        return sum(1 for row in self.rows if row.over)

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


def _customer_records() -> QuerySet[MessageRecord]:
    return MessageRecord.objects.filter(
        official_account=OuterRef("official_account"), openid=OuterRef("customer__openid")
    )


def _count(qs: QuerySet) -> Coalesce:
    return Coalesce(Subquery(qs.order_by().values("openid").annotate(n=Count("id")).values("n")), 0)


def inbox_sessions(
    *,
    account: OfficialAccount,
    user,
    agent: Agent | None = None,
    now: datetime | None = None,
    limit: int = INBOX_LIMIT,
) -> Inbox:
    """Open sessions (of `agent`, or all), each with its last message, since when the
    customer waits for an answer (their first message after the agents' last one),
    and the customer's messages `user` has not seen (since they last opened the
    conversation; never opened: those not answered yet). Who waited longest first,
    then the answered ones, oldest session first."""
    now = now or timezone.now()
    records = _customer_records()
    latest = records.filter(
        opercode__in=MessageRecord.OperCode.CUSTOMER | MessageRecord.OperCode.AGENT
    ).order_by("-time", "-id")
    seen = ConversationSeen.objects.filter(
        user=user, official_account=OuterRef("official_account"), openid=OuterRef("customer__openid")
    ).values("seen_at")[:1]
    sessions = KfSession.objects.filter(official_account=account, state=KfSession.State.OPEN)
    if agent is not None:
        sessions = sessions.filter(agent=agent)
    sessions = (
        sessions.select_related("customer", "agent")
        .only("id", "official_account_id", "state", "created_at", "accepted_at", "customer__openid",
              "customer__remark_name", "agent__kf_account", "agent__kf_nick")
        .annotate(
            last_text=Subquery(latest.values("text")[:1]),
            last_time=Subquery(latest.values("time")[:1]),
            last_opercode=Subquery(latest.values("opercode")[:1]),
            last_reply_at=Subquery(
                records.filter(opercode__in=MessageRecord.OperCode.AGENT).order_by("-time").values("time")[:1]
            ),
            seen_at=Subquery(seen),
        )
        .annotate(
            waiting_since=Subquery(
                records.filter(
                    opercode__in=MessageRecord.OperCode.CUSTOMER,
                    time__gt=Coalesce(
                        OuterRef("last_reply_at"), Value(now - UNANSWERED_LOOKBACK, output_field=DateTimeField())
                    ),
                )
                .order_by("time")
                .values("time")[:1]
            ),
            # Once opened: the customer's messages kfadmin stored after that moment
            # (their `time` has whole seconds only, so one written in the second the
            # page opened would hide behind it). Never opened: those not answered yet.
            unread=_count(
                records.filter(opercode__in=MessageRecord.OperCode.CUSTOMER).filter(
                    Q(IsNull(OuterRef("seen_at"), False), created_at__gt=OuterRef("seen_at"))
                    | Q(
                        IsNull(OuterRef("seen_at"), True),
                        time__gt=Coalesce(
                            OuterRef("last_reply_at"),
                            Value(now - UNANSWERED_LOOKBACK, output_field=DateTimeField()),
                        ),
                    )
                )
            ),
        )
        .order_by(F("waiting_since").asc(nulls_last=True), "accepted_at", "id")
    )
    page = list(sessions[:limit])
    total = len(page) if len(page) < limit else sessions.count()
    threshold = timedelta(seconds=account.alert_unanswered_seconds)
    rows = []
    for s in page:
        waited = max(now - s.waiting_since, timedelta(0)) if s.waiting_since else None
        rows.append(
            InboxRow(
                session=s,
                last_text=s.last_text or "",
                last_time=s.last_time,
                last_from_customer=s.last_opercode in MessageRecord.OperCode.CUSTOMER,
                waiting_since=s.waiting_since,
                unread=s.unread,
                waited=waited,
                over=waited is not None and waited >= threshold,
            )
        )
    return Inbox(rows=rows, total=total, threshold=threshold)


def unanswered_over_count(*, account: OfficialAccount, now: datetime | None = None) -> int:
    """How many open sessions have a customer waiting for an answer for at least the
    account's threshold: the inbox's `over`, counted for every session (not only the
    inbox's first page) without building the rows."""
    now = now or timezone.now()
    records = _customer_records()
    cutoff = now - timedelta(seconds=account.alert_unanswered_seconds)
    return (
        KfSession.objects.filter(official_account=account, state=KfSession.State.OPEN)
        .annotate(
            last_reply_at=Subquery(
                records.filter(opercode__in=MessageRecord.OperCode.AGENT).order_by("-time").values("time")[:1]
            )
        )
        .filter(
            Exists(
                records.filter(
                    opercode__in=MessageRecord.OperCode.CUSTOMER,
                    time__gt=Coalesce(
                        OuterRef("last_reply_at"), Value(now - UNANSWERED_LOOKBACK, output_field=DateTimeField())
                    ),
                    time__lte=cutoff,
                )
            )
        )
        .count()
    )


# --------------------------------------------------------------- alerts


@dataclass(frozen=True)
class AlertState:
    """What the alert poll tells a person's browser (static/js/alerts.js compares it
    with the previous answer to decide what is new)."""

    waiting: int
    waiting_over: int
    unread: int
    unanswered_over: int
    # The newest unread customer message in the person's conversations.
    latest_openid: str = ""
    latest_text: str = ""
    latest_id: int = 0


def alerts_state(
    *, account: OfficialAccount, user, agent: Agent | None, supervisor: bool, now: datetime | None = None
) -> AlertState:
    """Waiting customers (and those past the queue threshold); an agent's unread
    messages; for supervisors, sessions unanswered past the threshold."""
    now = now or timezone.now()
    waiting = KfSession.objects.filter(official_account=account, state=KfSession.State.WAITING).aggregate(
        n=Count("id"),
        over=Count("id", filter=Q(created_at__lte=now - timedelta(seconds=account.alert_queue_wait_seconds))),
    )
    unread = unanswered_over = 0
    latest_openid = latest_text = ""
    latest_id = 0
    if agent is not None:
        inbox = inbox_sessions(account=account, user=user, agent=agent, now=now)
        unread = inbox.unread
        unread_openids = [row.session.customer.openid for row in inbox.rows if row.unread]
        newest = (
            MessageRecord.objects.filter(
                official_account=account, openid__in=unread_openids, opercode__in=MessageRecord.OperCode.CUSTOMER
            )
            .order_by("-time", "-id")
            .values_list("id", "openid", "text")
            .first()
            if unread_openids
            else None
        )
        if newest is not None:
            latest_id, latest_openid, latest_text = newest
    if supervisor:
        unanswered_over = unanswered_over_count(account=account, now=now)
    return AlertState(
        waiting=waiting["n"],
        waiting_over=waiting["over"],
        unread=unread,
        unanswered_over=unanswered_over,
        latest_openid=latest_openid,
        latest_text=latest_text,
        latest_id=latest_id,
    )

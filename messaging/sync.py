"""History sync: WeChat's chat records (`getmsglist`) into the permanent archive.

WeChat keeps kf records about 30 days and answers at most 24 hours per query, 10,000
records per call, paged by the returned `msgid` (wechat-kf-api.md §6.1). The sync
walks 24-hour windows from a per-account cursor (`SyncState.cursor`, "everything
before this instant is stored"), pages each window to its end and stores each page as
it arrives, so it holds at most two pages in memory (the one being stored and the
next one being fetched), never a window.
The cursor moves only after a window is completely stored, and each window starts
`OVERLAP` before the cursor, so a worker killed anywhere resumes without loss and
records WeChat lists a little late are still picked up.

Idempotency. Records carry no id. The archive's natural key is (account, time,
digest, seq), `digest = record_digest(worker, openid, opercode, text)` and `seq` the
record's position among the identical records (same second, same content) of the
window. Every window covers whole seconds and sees a second's identical records all
together, so `seq` comes out the same in every window and on every re-run: re-syncing
adds nothing, and two identical messages in one second are both kept.

Storage. PostgreSQL: binary `COPY` of the page into a temporary staging table, then
`INSERT … SELECT … ON CONFLICT DO NOTHING` (rows inserted in key order, so two syncs
of the same account cannot deadlock); a page whose time span holds nothing yet (most
of a first import) is COPYed straight into the archive. Other databases (SQLite, the
embedded default): `bulk_create(ignore_conflicts=True)` in batches. A worker thread
fetches and parses the next page while the current one is stored.
"""

from __future__ import annotations

import logging
import math
import time as _time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import psycopg
from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, TruncSecond
from django.utils import timezone

from accounts.clients import wechat_client_for
from accounts.models import OfficialAccount, SyncState
from accounts.sync import SyncLeaseLost, sync_state_renew
from kfadmin.wechat import WeChatClient, WeChatError, WeChatRateLimited
from messaging.archive import archive_changed
from messaging.delivery import outbound_unknown_settle
from messaging.models import MediaFile, MessageRecord, OutboundMessage, record_digest
from sessions_app.models import Customer
from sessions_app.services import (
    EVENT_WINDOW,
    MESSAGE_WINDOW,
    Replies,
    customers_touch_bulk,
    customers_window_replied,
)

logger = logging.getLogger(__name__)

# getmsglist answers at most 24 hours per query and 10,000 records per call.
WINDOW = timedelta(hours=24)
PAGE_SIZE = 10000
# Each window re-reads this much before the cursor, for records WeChat lists late.
OVERLAP = timedelta(minutes=10)
# A provisional record (callback, kfadmin's own send) and a synced one this close in
# time, with the same content, are the same message (see `_reconcile`).
RECONCILE_WINDOW = timedelta(seconds=120)

_FIELD_MAX = 64  # worker and openid columns


def history_lookback() -> timedelta:
    """Where a first history sync starts: `settings.HISTORY_LOOKBACK_DAYS` days ago
    (default 2; the backfill command imports older history)."""
    return timedelta(days=settings.HISTORY_LOOKBACK_DAYS)


# ------------------------------------------------------------------ progress


@dataclass
class SyncProgress:
    """What a history run has done so far; saved as `SyncState.progress`."""

    job: str
    range_from: datetime
    range_until: datetime
    started_at: datetime = field(default_factory=timezone.now)
    windows_total: int = 0
    windows_done: int = 0
    pages: int = 0
    records_seen: int = 0
    records_stored: int = 0
    provisional_merged: int = 0
    cursor: datetime | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    state: str = "running"
    run_from: datetime | None = None  # where this run started (later than range_from when resuming)
    _began: float = field(default_factory=_time.monotonic, repr=False)

    @property
    def elapsed(self) -> float:
        return max(_time.monotonic() - self._began, 1e-9)

    @property
    def rate(self) -> float:
        """Records read from WeChat per second."""
        return self.records_seen / self.elapsed

    @property
    def fraction(self) -> float:
        """Share of the time range already stored."""
        span = (self.range_until - self.range_from).total_seconds()
        if span <= 0 or self.cursor is None:
            return 1.0 if self.state == "done" else 0.0
        return min(1.0, max(0.0, (self.cursor - self.range_from).total_seconds() / span))

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at this run's pace so far (None before the first window)."""
        if self.state == "done":
            return 0.0
        run_from = self.run_from or self.range_from
        span = (self.range_until - run_from).total_seconds()
        done = (self.cursor - run_from).total_seconds() if self.cursor else 0.0
        if span <= 0 or done <= 0:
            return None
        return self.elapsed * max(0.0, span - done) / done

    def as_json(self) -> dict:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        eta = self.eta_seconds
        return {
            "job": self.job,
            "state": self.state,
            "from": iso(self.range_from),
            "until": iso(self.range_until),
            "cursor": iso(self.cursor),
            "window_start": iso(self.window_start),
            "window_end": iso(self.window_end),
            "windows_done": self.windows_done,
            "windows_total": self.windows_total,
            "pages": self.pages,
            "records_seen": self.records_seen,
            "records_stored": self.records_stored,
            "provisional_merged": self.provisional_merged,
            "rate": round(self.rate, 1),
            "eta_seconds": None if eta is None else round(eta),
            "percent": round(100 * self.fraction, 1),
            "started_at": iso(self.started_at),
            "updated_at": iso(timezone.now()),
        }


@dataclass(frozen=True)
class PageResult:
    """One stored page (what the `on_page` hook of a sync receives)."""

    window_start: datetime
    window_end: datetime
    number: int  # 1-based within the window
    records: int
    stored: int
    provisional_merged: int


@dataclass(frozen=True)
class WindowResult:
    pages: int
    records: int
    stored: int
    provisional_merged: int


PageHook = Callable[[PageResult], None]
ProgressHook = Callable[["SyncProgress"], None]


# ------------------------------------------------------------------ one window


def records_sync_window(
    *,
    account_id: int,
    start: datetime,
    end: datetime,
    client: WeChatClient | None = None,
    on_page: PageHook | None = None,
    page_size: int | None = None,
) -> WindowResult:
    """Fetch every record of [start, end] (whole seconds, at most 24 h) and store it.

    Pages are stored one by one as they arrive, each in its own transaction. Safe to
    repeat: records already archived are skipped. Raises the client's errors (the
    retryable ones are for the caller to retry; pages stored so far stay stored).
    """
    starttime = math.floor(start.timestamp())
    endtime = math.floor(end.timestamp())
    if endtime < starttime:
        raise ValueError("The window ends before it starts.")
    if endtime - starttime > WINDOW.total_seconds():
        raise ValueError("A history window may span at most 24 hours.")
    account = OfficialAccount.objects.get(pk=account_id)
    window = (datetime.fromtimestamp(starttime, tz=UTC), datetime.fromtimestamp(endtime, tz=UTC))
    results: list[WindowResult] = []
    _sync_windows(
        account,
        client or wechat_client_for(account),
        [window],
        page_size=page_size,
        on_page=on_page,
        on_window=lambda start, end, result: results.append(result),
    )
    return results[0]


WindowHook = Callable[[datetime, datetime, WindowResult], None]


def _sync_windows(
    account: OfficialAccount,
    client: WeChatClient,
    windows: Sequence[tuple[datetime, datetime]],
    *,
    page_size: int | None,
    on_page: PageHook | None,
    on_window: WindowHook,
) -> None:
    """Fetch and store every page of `windows`, in order; `on_window` runs once a
    window's last page is stored.

    A worker thread reads one page ahead, across window boundaries too: it fetches,
    parses and turns the next page into rows (digests, seq) while this thread stores
    the current one, so WeChat's answer time and Python's parsing hide behind the
    database's insert time.
    """
    number = page_size or PAGE_SIZE

    def fetched() -> Iterator[tuple[datetime, datetime, list[Row] | None]]:
        for start, end in windows:
            # (time, digest) -> identical records seen so far in this window.
            seen: dict[tuple[int, bytes], int] = {}
            starttime, endtime = math.floor(start.timestamp()), math.floor(end.timestamp())
            for page in client.iter_msg_record_pages(starttime, endtime, number=number):
                yield start, end, _page_rows(page.recordlist, seen)
            yield start, end, None  # the window is complete

    pages = records = stored = merged = 0
    for start, end, rows in _read_ahead(fetched()):
        if rows is None:
            on_window(start, end, WindowResult(pages, records, stored, merged))
            pages = records = stored = merged = 0
            continue
        page_stored, page_merged = _store_page(account, rows) if rows else (0, 0)
        pages += 1
        records += len(rows)
        stored += page_stored
        merged += page_merged
        if on_page is not None:
            on_page(PageResult(start, end, pages, len(rows), page_stored, page_merged))


T = TypeVar("T")


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """Yield from `items` while a worker thread already produces the next one.

    At most two pages are in memory. The worker's own database connection (the
    client's token store reads the shared token) is closed before the thread ends.
    """

    def step() -> tuple[T] | None:
        for item in items:  # the next one, if any
            return (item,)
        return None

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-fetch") as pool:
        try:
            future = pool.submit(step)
            while True:
                got = future.result()
                if got is None:
                    return
                future = pool.submit(step)
                yield got[0]
        finally:
            pool.submit(connections.close_all)


# A staged record: (unix time, worker, openid, opercode, text, digest, seq).
Row = tuple[int, str, str, int, str, bytes, int]


def _page_rows(records: Iterable, seen: dict[tuple[int, bytes], int]) -> list[Row]:
    rows: list[Row] = []
    for record in records:
        worker, openid, text = record.worker, record.openid, record.text
        if len(worker) > _FIELD_MAX or len(openid) > _FIELD_MAX:
            # Never seen from WeChat; storing a shortened value beats a sync stuck forever.
            worker, openid = worker[:_FIELD_MAX], openid[:_FIELD_MAX]
        if "\x00" in text:
            text = text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
        try:
            digest = record_digest(worker, openid, record.opercode, text)
        except UnicodeEncodeError:
            # A lone surrogate from a \ud8xx escape: not representable in UTF-8.
            worker, openid, text = (
                value.encode("utf-8", "replace").decode("utf-8") for value in (worker, openid, text)
            )
            digest = record_digest(worker, openid, record.opercode, text)
        key = (record.time, digest)
        seq = seen.get(key, 0)
        seen[key] = seq + 1
        rows.append((record.time, worker, openid, record.opercode, text, digest, seq))
    return rows


# ------------------------------------------------------------------ storing a page


def _store_page(account: OfficialAccount, rows: list[Row]) -> tuple[int, int]:
    """Store one page; returns (records inserted, provisional records merged)."""
    lo = datetime.fromtimestamp(min(r[0] for r in rows), tz=UTC) - RECONCILE_WINDOW
    hi = datetime.fromtimestamp(max(r[0] for r in rows), tz=UTC) + RECONCILE_WINDOW
    with transaction.atomic():
        provisional = list(
            MessageRecord.objects.filter(official_account=account, time__gte=lo, time__lte=hi)
            .exclude(source=MessageRecord.Source.SYNC)
            .order_by("time", "id")
            .values_list("id", "time", "worker", "openid", "opercode", "text", "digest", "seq")
        )
        if connection.vendor == "postgresql":
            inserted = _insert_postgresql(account.pk, rows)
        else:
            inserted = _insert_portable(account.pk, rows)
        new_rows = [r for r in rows if (r[0], r[5], r[6]) in inserted]
        merged, already_counted = (
            _reconcile(rows, new_rows, provisional, account_id=account.pk) if provisional else (0, set())
        )
        _touch_customers(account, new_rows, already_counted)
        _count_replies(account, new_rows)
        _archive_changed(account, new_rows, provisional if merged else ())
    return len(new_rows), merged


def _archive_changed(account: OfficialAccount, new_rows: Sequence[Row], provisional: Sequence[tuple]) -> None:
    """Tell the archive's listeners (the reports' rollups) what this page stored, and
    where provisional records it merged were."""
    changes = [(row[2], datetime.fromtimestamp(row[0], tz=UTC)) for row in new_rows]
    changes += [(p[3], p[1]) for p in provisional]
    archive_changed(account_id=account.pk, changes=changes)


_STAGE_TABLE = "messaging_record_stage"
_STAGE_DDL = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE_TABLE} (
    t bigint NOT NULL,
    worker text NOT NULL,
    openid text NOT NULL,
    opercode integer NOT NULL,
    body text NOT NULL,
    digest bytea NOT NULL,
    seq smallint NOT NULL
)
"""
_STAGE_TYPES = ["int8", "text", "text", "int4", "text", "bytea", "int2"]
_INSERT_FROM_STAGE = f"""
INSERT INTO messaging_messagerecord
    (official_account_id, "time", worker, openid, opercode, "text", digest, seq, source, created_at)
SELECT %s, to_timestamp(t), worker, openid, opercode, body, digest, seq, 'sync', now()
FROM {_STAGE_TABLE}
ORDER BY t, digest, seq
ON CONFLICT (official_account_id, "time", digest, seq) DO NOTHING
RETURNING extract(epoch FROM "time")::bigint, digest, seq
"""


_ARCHIVE_COLUMNS = (
    'official_account_id, "time", worker, openid, opercode, "text", digest, seq, source, created_at'
)
_ARCHIVE_TYPES = ["int8", "timestamptz", "text", "text", "int4", "text", "bytea", "int2", "text", "timestamptz"]


def _insert_postgresql(account_id: int, rows: Sequence[Row]) -> set[tuple[int, bytes, int]]:
    """Insert what is new; returns the keys (unix time, digest, seq) of the rows
    inserted. Runs inside the caller's transaction.

    Rows later than the newest record the archive holds within the page's time span
    cannot conflict (the natural key includes the time), so they are COPYed straight
    into the archive; only the rows up to it — the overlap with the previous window at
    each window's start, or a page synced again — go through the staging table and
    INSERT … ON CONFLICT DO NOTHING. If a concurrent sync inserts the same records
    meanwhile, the whole page takes the staging path.
    """
    connection.ensure_connection()
    raw = connection.connection  # the psycopg 3 connection under Django's wrapper
    lo, hi = min(r[0] for r in rows), max(r[0] for r in rows)
    with raw.cursor() as cursor:
        cursor.execute(
            'SELECT max("time") FROM messaging_messagerecord WHERE official_account_id = %s '
            'AND "time" BETWEEN to_timestamp(%s) AND to_timestamp(%s)',
            (account_id, lo, hi),
        )
        latest = cursor.fetchone()[0]
        if latest is None:
            fresh, staged = list(rows), []
        elif SPLIT_PAGES:
            cut = int(latest.timestamp())
            fresh, staged = [r for r in rows if r[0] > cut], [r for r in rows if r[0] <= cut]
        else:
            fresh, staged = [], list(rows)
        inserted: set[tuple[int, bytes, int]] = set()
        if fresh:
            try:
                with transaction.atomic():  # a savepoint to fall back from
                    _copy_into_archive(cursor, account_id, fresh)
                inserted = {(r[0], r[5], r[6]) for r in fresh}
            except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                staged = list(rows)  # another sync stored some of these records meanwhile
        if staged:
            inserted |= _insert_staged(cursor, account_id, staged)
        return inserted


# Off only to measure what splitting a page saves (bench/sync_history.py --no-split).
SPLIT_PAGES = True


def _insert_staged(cursor, account_id: int, rows: Sequence[Row]) -> set[tuple[int, bytes, int]]:
    cursor.execute(_STAGE_DDL)
    # Emptied explicitly, not ON COMMIT: inside a savepoint (a caller's atomic
    # block, a test) no commit happens between two pages.
    cursor.execute(f"TRUNCATE {_STAGE_TABLE}")
    with cursor.copy(
        f"COPY {_STAGE_TABLE} (t, worker, openid, opercode, body, digest, seq) "
        "FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_STAGE_TYPES)
        for row in rows:
            copy.write_row(row)
    cursor.execute(_INSERT_FROM_STAGE, (account_id,))
    return {(t, bytes(digest), seq) for t, digest, seq in cursor.fetchall()}


def _copy_into_archive(cursor, account_id: int, rows: Sequence[Row]) -> None:
    now = timezone.now()
    with cursor.copy(f"COPY messaging_messagerecord ({_ARCHIVE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_ARCHIVE_TYPES)
        for t, worker, openid, opercode, text, digest, seq in rows:
            at = datetime.fromtimestamp(t, tz=UTC)
            copy.write_row((account_id, at, worker, openid, opercode, text, digest, seq, "sync", now))


def _insert_portable(account_id: int, rows: Sequence[Row]) -> set[tuple[int, bytes, int]]:
    """The same for SQLite: find the keys already stored, bulk-insert the others."""
    lo = datetime.fromtimestamp(min(r[0] for r in rows), tz=UTC)
    hi = datetime.fromtimestamp(max(r[0] for r in rows), tz=UTC)
    existing = {
        (t, bytes(d), s)
        for t, d, s in MessageRecord.objects.filter(
            official_account_id=account_id, time__gte=lo, time__lte=hi
        ).values_list("time", "digest", "seq")
    }
    now = timezone.now()
    fresh: dict[tuple[int, bytes, int], MessageRecord] = {}
    for t, worker, openid, opercode, text, digest, seq in rows:
        at = datetime.fromtimestamp(t, tz=UTC)
        if (at, digest, seq) in existing:
            continue
        fresh[(t, digest, seq)] = MessageRecord(
            official_account_id=account_id,
            time=at,
            worker=worker,
            openid=openid,
            opercode=opercode,
            text=text,
            digest=digest,
            seq=seq,
            source=MessageRecord.Source.SYNC,
            created_at=now,
        )
    MessageRecord.objects.bulk_create(fresh.values(), ignore_conflicts=True, batch_size=500)
    return set(fresh)


def _same_message(provisional: tuple, synced: Row) -> bool:
    """Whether a provisional record and a synced one describe the same message.

    Same customer; the provisional record's agent, if it names one (a callback for a
    customer message does not know the agent); customer messages match each other
    whatever their opercode (a callback says 2001, the record list may say 2003) and
    must have the same text; agent messages need the same opercode and text; session
    events the same kind (`_same_session_event`; their text is ours, not WeChat's).
    """
    _, _, p_worker, p_openid, p_opercode, p_text, _, _ = provisional
    _, s_worker, s_openid, s_opercode, s_text, _, _ = synced
    if p_openid != s_openid or (p_worker and p_worker != s_worker):
        return False
    if p_opercode in MessageRecord.OperCode.CUSTOMER and s_opercode in MessageRecord.OperCode.CUSTOMER:
        return p_text == s_text
    if MessageRecord.OperCode.is_session_event(p_opercode):
        return _same_session_event(p_opercode, s_opercode)
    return p_opercode == s_opercode and p_text == s_text


def _same_session_event(provisional: int, synced: int) -> bool:
    """Whether a session event learned from a callback can be WeChat's record `synced`:
    the same opercode, or both a session start (a callback archives every start as
    1001; kfadmin's own assign and transfer, create_session, are 1002 in WeChat's
    history)."""
    if provisional == synced:
        return True
    starts = MessageRecord.OperCode.SESSION_STARTS
    return provisional in starts and synced in starts


def _reconcile(
    rows: Sequence[Row], new_rows: Sequence[Row], provisional: list[tuple], *, account_id: int
) -> tuple[int, set[int]]:
    """Merge records learned earlier from callbacks or kfadmin's own sends into the
    synced copies, so the archive holds each message once.

    The rule:

    1. A provisional record with exactly a synced record's key (same second, same
       content, same seq) *is* that record: it is kept and becomes `source=sync`.
    2. Every synced record inserted by this page cancels at most one provisional
       record that `_same_message` accepts and whose time is within
       RECONCILE_WINDOW (±120 s: callbacks carry the time the push was built,
       kfadmin's sends the time of our request, both a second or two off WeChat's
       record); the nearest in time wins, ties go to the older row. The cancelled
       row is deleted.

    Only records inserted now take part in rule 2, so a synced record consumes a
    provisional one exactly once: re-syncing a window never deletes anything, and
    two genuinely repeated messages (the same "ok" twice a minute apart) keep two
    rows. A message sent from kfadmin that stood for the cancelled row now stands
    for the synced one (`OutboundMessage.record`), and a customer's kept media moves
    to it too (`MediaFile.record`). Returns (rows merged, indexes into
    `new_rows` of the messages that were already known — their customer window was
    counted when they first arrived).
    """
    adopted, candidates = _reconcile_exact(rows, provisional)
    cancelled, replaced_by, already_counted = _reconcile_nearest(new_rows, candidates)
    if adopted:
        MessageRecord.objects.filter(pk__in=adopted).update(source=MessageRecord.Source.SYNC)
    if cancelled:
        _relink_sends(account_id, replaced_by)
        MessageRecord.objects.filter(pk__in=cancelled).delete()
    return len(adopted) + len(cancelled), already_counted


def _reconcile_exact(rows: Sequence[Row], provisional: list[tuple]) -> tuple[list[int], list[tuple]]:
    """Rule 1: (ids of the provisional records that have a synced record's exact key,
    the other provisional records)."""
    staged_keys = {(r[0], r[5], r[6]) for r in rows}
    adopted: list[int] = []
    candidates: list[tuple] = []
    for p in provisional:
        p_id, p_time, *_rest, p_digest, p_seq = p
        key = (int(p_time.timestamp()), bytes(p_digest), p_seq)
        if p_time.microsecond == 0 and key in staged_keys:
            adopted.append(p_id)
        else:
            candidates.append(p)
    return adopted, candidates


def _reconcile_nearest(
    new_rows: Sequence[Row], candidates: list[tuple]
) -> tuple[list[int], dict[int, tuple[int, bytes, int]], set[int]]:
    """Rule 2: (ids of the provisional records cancelled, the synced key that replaces
    each of them, indexes into `new_rows` that cancelled one)."""
    by_openid: dict[str, list[tuple]] = {}
    for p in candidates:
        by_openid.setdefault(p[3], []).append(p)
    cancelled: list[int] = []
    already_counted: set[int] = set()
    window = RECONCILE_WINDOW.total_seconds()
    used: set[int] = set()
    replaced_by: dict[int, tuple[int, bytes, int]] = {}
    for index, synced in enumerate(new_rows):
        best = None
        best_gap = window + 1
        for p in by_openid.get(synced[2], ()):
            if p[0] in used or not _same_message(p, synced):
                continue
            gap = abs(p[1].timestamp() - synced[0])
            if gap <= window and gap < best_gap:
                best, best_gap = p, gap
        if best is not None:
            used.add(best[0])
            cancelled.append(best[0])
            replaced_by[best[0]] = (synced[0], synced[5], synced[6])
            already_counted.add(index)
    return cancelled, replaced_by, already_counted


def _relink_sends(account_id: int, replaced_by: dict[int, tuple[int, bytes, int]]) -> None:
    """Point what hangs on the provisional copies at the synced records that replace
    them: kfadmin's sends, so each synced copy is known to stand for that send (and is
    never taken for WeChat's copy of another send whose outcome is unknown), and a
    customer's kept picture or recording, so the conversation still shows it."""
    sends = list(OutboundMessage.objects.filter(record_id__in=list(replaced_by)).values_list("pk", "record_id"))
    media = list(MediaFile.objects.filter(record_id__in=list(replaced_by)).values_list("pk", "record_id"))
    synced_ids: dict[int, int | None] = {}
    for provisional_id in {record_id for _, record_id in sends + media}:
        t, digest, seq = replaced_by[provisional_id]
        synced_ids[provisional_id] = (
            MessageRecord.objects.filter(
                official_account_id=account_id, time=datetime.fromtimestamp(t, tz=UTC), digest=digest, seq=seq
            )
            .values_list("pk", flat=True)
            .first()
        )
    for outbound_id, record_id in sends:
        OutboundMessage.objects.filter(pk=outbound_id).update(record_id=synced_ids[record_id])
    for media_id, record_id in media:
        MediaFile.objects.filter(pk=media_id).update(record_id=synced_ids[record_id])


def _touch_customers(account: OfficialAccount, new_rows: Sequence[Row], skip: set[int]) -> None:
    """Open or widen customers' reply windows from newly archived customer messages.

    Only messages young enough to still hold a window (48 h) are passed on: older
    ones cannot change what kfadmin may send, and touching every customer of a
    30-day import made the sessions service's per-row updates the slowest part of
    the sync. A message a callback already reported was counted then (`skip`).
    """
    horizon = math.floor((timezone.now() - MESSAGE_WINDOW).timestamp())
    touches = [
        (row[2], datetime.fromtimestamp(row[0], tz=UTC))
        for index, row in enumerate(new_rows)
        if row[0] > horizon and row[3] in MessageRecord.OperCode.CUSTOMER and index not in skip
    ]
    if touches:
        customers_touch_bulk(account, touches)


def _count_replies(account: OfficialAccount, new_rows: Sequence[Row]) -> None:
    """Use up customers' budgets by the agents' replies the archive now holds.

    A customer message grants 5 sends, a follow / click / scan 3 for a minute; agents
    may have replied from WeChat's own client or another tool, which kfadmin learns
    only from this history. For each customer with a running grant and a new message
    or reply young enough to matter, the agents' messages archived since the
    customer's last message and within their last event's minute are counted,
    kfadmin's own sends among them (archived when sent), and each grant lowered to
    what they leave of it (`sessions_app.services.Replies`).
    """
    now = timezone.now()
    horizon = math.floor((now - MESSAGE_WINDOW).timestamp())
    openids = {
        row[2]
        for row in new_rows
        if row[0] > horizon and (row[3] in MessageRecord.OperCode.CUSTOMER or row[3] in MessageRecord.OperCode.AGENT)
    }
    if not openids:
        return

    def replies(since: str, before: str | None = None) -> Coalesce:
        window = Q(time__gte=OuterRef(since))
        if before is not None:
            window &= Q(time__lt=OuterRef(before))
        return Coalesce(
            Subquery(
                MessageRecord.objects.filter(
                    window,
                    official_account=account,
                    openid=OuterRef("openid"),
                    opercode=MessageRecord.OperCode.AGENT_SENT,
                )
                .order_by()
                .values("openid")
                .annotate(n=Count("id"))
                .values("n")
            ),
            0,
        )

    counted = (
        Customer.objects.filter(official_account=account, openid__in=sorted(openids))
        .filter(Q(window_expires_at__gt=now) | Q(event_expires_at__gt=now))
        # WeChat's records have whole seconds: a reply in the second of the
        # customer's message (or event) came after it.
        .annotate(
            message_second=TruncSecond("last_message_at", tzinfo=UTC),
            event_second=TruncSecond("last_event_at", tzinfo=UTC),
        )
        .annotate(event_end=F("event_second") + EVENT_WINDOW)
        .annotate(
            since_message=replies("message_second"),
            in_event=replies("event_second", "event_end"),
            in_event_before_message=replies("event_second", "message_second"),
        )
        .filter(Q(since_message__gt=0) | Q(in_event__gt=0))
        .values_list(
            "openid", "last_message_at", "last_event_at", "since_message", "in_event", "in_event_before_message"
        )
    )
    customers_window_replied(account, [Replies(*row) for row in counted])


# ------------------------------------------------------------------ walking windows


def history_sync(
    *,
    account_id: int,
    until: datetime | None = None,
    client: WeChatClient | None = None,
    on_page: PageHook | None = None,
    on_progress: ProgressHook | None = None,
    lease_token: str | None = None,
) -> SyncProgress:
    """Bring the account's archive up to `until` (default: now).

    Starts at the history cursor (first run: `history_lookback()` ago) and walks
    24-hour windows, advancing the cursor after each complete window. With
    `lease_token` (the task's claim on the history SyncState) the claim is renewed
    after every page (the run's heartbeat) and the run stops with SyncLeaseLost if
    another run took it over.
    """
    now = timezone.now()
    state = _state(account_id, SyncState.Job.HISTORY)
    start = state.cursor or (now - history_lookback())
    progress = _walk(
        state=state,
        start=start,
        until=until or now,
        overlap=state.cursor is not None,
        client=client,
        on_page=on_page,
        on_progress=on_progress,
        lease_token=lease_token,
    )
    # Sends whose outcome was unknown: WeChat's copy may have arrived now, and the
    # cursor says how far the history is completely stored.
    outbound_unknown_settle(account=OfficialAccount.objects.get(pk=account_id), stored_until=progress.cursor)
    return progress


def history_backfill(
    *,
    account_id: int,
    days: float,
    until: datetime | None = None,
    restart: bool = False,
    client: WeChatClient | None = None,
    on_page: PageHook | None = None,
    on_progress: ProgressHook | None = None,
    lease_token: str | None = None,
) -> SyncProgress:
    """Import the last `days` days of history (the first import of an account).

    Resumable: it keeps its own cursor (SyncState job "backfill"), so running it again
    after an interruption (or a failure) continues where the last complete window
    ended, up to now; `restart` starts over. Once a backfill has finished, running it
    again imports the requested days afresh (the archive skips what it has). When done, the periodic history sync continues from its end instead
    of re-reading the look-back.
    """
    if days <= 0:
        raise ValueError("days must be positive.")
    now = timezone.now()
    until = until or now
    state = _state(account_id, SyncState.Job.BACKFILL)
    unfinished = (state.progress or {}).get("state") != "done"
    resume = state.cursor is not None and unfinished and not restart
    start = state.cursor if resume and state.cursor is not None else until - timedelta(days=days)
    if not resume:
        # A fresh import's cursor starts at its own start: one that fails before its
        # first complete window must resume there, not at an earlier backfill's end.
        SyncState.objects.filter(pk=state.pk).update(cursor=_floor_second(start))
    progress = _walk(
        state=state,
        start=start,
        until=until,
        overlap=resume,
        client=client,
        on_page=on_page,
        on_progress=on_progress,
        lease_token=lease_token,
        range_from=_stored_from(state) if resume else None,
    )
    end = progress.cursor or until
    SyncState.objects.get_or_create(official_account_id=account_id, job=SyncState.Job.HISTORY)
    SyncState.objects.filter(official_account_id=account_id, job=SyncState.Job.HISTORY).filter(
        Q(cursor__isnull=True) | Q(cursor__lt=end)
    ).update(cursor=end)
    return progress


def _state(account_id: int, job: str) -> SyncState:
    OfficialAccount.objects.only("pk").get(pk=account_id)  # DoesNotExist for a bad id
    state, _ = SyncState.objects.get_or_create(official_account_id=account_id, job=job)
    return state


def _stored_from(state: SyncState) -> datetime | None:
    raw = (state.progress or {}).get("from")
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _floor_second(value: datetime) -> datetime:
    return datetime.fromtimestamp(math.floor(value.timestamp()), tz=UTC)


def window_bounds(start: datetime, until: datetime, *, overlap: bool) -> list[tuple[datetime, datetime]]:
    """The windows that cover [start, until]: 24 h each, each starting OVERLAP before
    the previous one's end (and the first OVERLAP before `start` when resuming)."""
    start, until = _floor_second(start), _floor_second(until)
    windows = []
    cursor = start
    first = True
    while cursor < until:
        window_start = cursor - OVERLAP if (overlap or not first) else cursor
        window_end = min(window_start + WINDOW, until)
        windows.append((window_start, window_end))
        cursor = window_end
        first = False
    return windows


def _walk(
    *,
    state: SyncState,
    start: datetime,
    until: datetime,
    overlap: bool,
    client: WeChatClient | None,
    on_page: PageHook | None,
    on_progress: ProgressHook | None,
    lease_token: str | None,
    range_from: datetime | None = None,
) -> SyncProgress:
    account = OfficialAccount.objects.get(pk=state.official_account_id)
    client = client or wechat_client_for(account)
    windows = window_bounds(start, until, overlap=overlap)
    progress = SyncProgress(
        job=state.job,
        range_from=range_from or _floor_second(start),
        range_until=_floor_second(until),
        windows_total=len(windows),
        cursor=_floor_second(start),
        run_from=_floor_second(start),
    )
    SyncState.objects.filter(pk=state.pk).update(last_started_at=timezone.now())
    page_done, window_done = _progress_recorders(
        state, progress, lease_token, on_page=on_page, on_progress=on_progress
    )
    try:
        _sync_windows(
            account, client, windows, page_size=None, on_page=page_done, on_window=window_done
        )
    except SyncLeaseLost:
        raise
    except Exception as exc:
        _walk_failed(state, progress, lease_token, exc)
        raise
    _walk_done(state, progress, lease_token)
    return progress


def _progress_recorders(
    state: SyncState,
    progress: SyncProgress,
    lease_token: str | None,
    *,
    on_page: PageHook | None,
    on_progress: ProgressHook | None,
) -> tuple[PageHook, WindowHook]:
    """The page and window hooks that add each page to `progress`, save it (the
    cursor only after a complete window) and pass it on to the caller's hooks."""

    def page_done(page: PageResult) -> None:
        progress.window_start, progress.window_end = page.window_start, page.window_end
        progress.pages += 1
        progress.records_seen += page.records
        progress.records_stored += page.stored
        progress.provisional_merged += page.provisional_merged
        _save(state, progress, lease_token)
        if on_progress is not None:
            on_progress(progress)
        if on_page is not None:
            on_page(page)

    def window_done(window_start: datetime, window_end: datetime, result: WindowResult) -> None:
        progress.windows_done += 1
        progress.cursor = window_end
        _save(state, progress, lease_token, cursor=window_end)
        if on_progress is not None:
            on_progress(progress)

    return page_done, window_done


def _walk_failed(state: SyncState, progress: SyncProgress, lease_token: str | None, exc: Exception) -> None:
    progress.state = "failed"
    explanation = getattr(exc, "explanation", None) or (
        f"The {state.job} sync failed unexpectedly ({type(exc).__name__}); see the worker log."
    )
    _save(state, progress, lease_token, error=explanation)


def _walk_done(state: SyncState, progress: SyncProgress, lease_token: str | None) -> None:
    progress.state = "done"
    progress.window_start = progress.window_end = None
    _save(state, progress, lease_token, success=True)
    logger.info(
        "%s of account %s: %s records read, %s new, %s windows, %.0f records/s.",
        state.job,
        state.official_account_id,
        progress.records_seen,
        progress.records_stored,
        progress.windows_done,
        progress.rate,
    )


def _save(
    state: SyncState,
    progress: SyncProgress,
    lease_token: str | None,
    *,
    cursor: datetime | None = None,
    success: bool = False,
    error: str | None = None,
) -> None:
    """Write progress (and the cursor after a complete window) to the SyncState row,
    renewing the run's claim; a claim taken over by another run stops this one."""
    now = timezone.now()
    fields: dict = {"progress": progress.as_json()}
    if cursor is not None:
        fields["cursor"] = cursor
    if success:
        fields.update(last_success_at=now, last_error="")
    if error is not None:
        fields.update(last_error_at=now, last_error=error)
    if lease_token is None:
        SyncState.objects.filter(pk=state.pk).update(**fields)
    else:
        # The run's heartbeat: every page renews the claim (SYNC_LEASE_SECONDS).
        sync_state_renew(
            account_id=state.official_account_id, job=state.job, token=lease_token, **fields
        )


# ------------------------------------------------------------------ live tail
#
# While a session is open WeChat hands the customer's messages to its own kf client,
# not to the callback URL (wechat-kf-api.md §5): kfadmin learns them only from
# getmsglist. The tail reads, every SYNC_TAIL_SECONDS, the records from a little
# before the newest one stored up to now, through the history sync's own storing path
# (same natural key, reconciliation with provisional copies, reply windows), so the
# two never store a record twice and either may run first.

# Re-read this much before the newest stored record: WeChat may list a record a few
# seconds after its time. Anything later still is the history sync's (10 min overlap).
TAIL_OVERLAP = timedelta(seconds=30)
# Never further back than this: the periodic history sync covers older records.
TAIL_LOOKBACK = timedelta(minutes=15)
# Backoff after WeChat says a call quota is used up (45011 per minute, 45009 per day):
# the first pause, doubled for each further refusal in a row, up to the cap.
TAIL_PAUSE = {45011: timedelta(minutes=1), 45009: timedelta(minutes=15)}
TAIL_PAUSE_MAX = {45011: timedelta(minutes=10), 45009: timedelta(hours=2)}


@dataclass(frozen=True)
class TailResult:
    window_start: datetime
    window_end: datetime
    pages: int = 0
    records: int = 0
    stored: int = 0
    merged: int = 0
    error: str = ""
    paused_until: datetime | None = None

    def as_json(self) -> dict:
        return {
            "from": self.window_start.isoformat(),
            "until": self.window_end.isoformat(),
            "pages": self.pages,
            "records": self.records,
            "stored": self.stored,
            "merged": self.merged,
            "error": self.error,
        }


def tail_window(*, account_id: int, now: datetime) -> tuple[datetime, datetime]:
    """[start, end] in whole seconds: from TAIL_OVERLAP before the newest record
    WeChat's list gave us (not a provisional copy: a send from kfadmin is newer than
    a customer message WeChat has not listed yet) to now, at most TAIL_LOOKBACK."""
    end = _floor_second(now)
    earliest = end - TAIL_LOOKBACK
    newest = (
        MessageRecord.objects.filter(
            official_account_id=account_id, source=MessageRecord.Source.SYNC, time__gte=earliest
        )
        .order_by("-time")
        .values_list("time", flat=True)
        .first()
    )
    start = earliest if newest is None else max(earliest, _floor_second(newest - TAIL_OVERLAP))
    return start, end


def live_tail(
    *,
    account_id: int,
    client: WeChatClient | None = None,
    now: datetime | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> TailResult:
    """Store the account's newest records (see the section's comment).

    Never raises a WeChat error: the next run, seconds later, is the retry. A call
    quota used up (45009/45011) pauses the account's tail (`SyncState.paused_until`,
    shown on the sync page) instead of spending more of it every few seconds.
    """
    account = OfficialAccount.objects.get(pk=account_id)
    now = now or timezone.now()
    start, end = tail_window(account_id=account_id, now=now)
    pages = records = stored = merged = 0
    try:
        if end > start:
            pages_iter = (client or wechat_client_for(account)).iter_msg_record_pages(
                math.floor(start.timestamp()), math.floor(end.timestamp()), number=PAGE_SIZE
            )
            seen: dict[tuple[int, bytes], int] = {}
            for page in pages_iter:
                rows = _page_rows(page.recordlist, seen)
                pages += 1
                records += len(rows)
                if rows and not _all_stored(account_id, rows):
                    page_stored, page_merged = _store_page(account, rows)
                    stored += page_stored
                    merged += page_merged
                if heartbeat is not None:
                    heartbeat()
    except WeChatError as exc:
        return _tail_failed(account_id, TailResult(start, end, pages, records, stored, merged), exc, now)
    result = TailResult(start, end, pages, records, stored, merged)
    SyncState.objects.filter(official_account_id=account_id, job=SyncState.Job.TAIL).update(
        cursor=end, last_success_at=timezone.now(), last_error="", paused_until=None, progress=result.as_json()
    )
    return result


def _all_stored(account_id: int, rows: Sequence[Row]) -> bool:
    """Whether the archive holds every row under its natural key already: most tail
    runs re-read only records stored by the run before, and one read of their keys
    is far cheaper than the staging, insert and reconciliation of `_store_page`."""
    lo = datetime.fromtimestamp(min(r[0] for r in rows), tz=UTC)
    hi = datetime.fromtimestamp(max(r[0] for r in rows), tz=UTC)
    stored = {
        (math.floor(t.timestamp()), bytes(d), q)
        for t, d, q in MessageRecord.objects.filter(
            official_account_id=account_id, time__gte=lo, time__lte=hi, source=MessageRecord.Source.SYNC
        ).values_list("time", "digest", "seq")
    }
    return all((r[0], r[5], r[6]) in stored for r in rows)


def _tail_failed(account_id: int, partial: TailResult, exc: WeChatError, now: datetime) -> TailResult:
    state = SyncState.objects.get(official_account_id=account_id, job=SyncState.Job.TAIL)
    fields: dict = {"last_error_at": timezone.now(), "last_error": exc.explanation}
    paused_until = None
    if isinstance(exc, WeChatRateLimited) and exc.errcode in TAIL_PAUSE:
        in_a_row = int((state.progress or {}).get("pauses", 0)) + 1
        pause = min(TAIL_PAUSE[exc.errcode] * 2 ** (in_a_row - 1), TAIL_PAUSE_MAX[exc.errcode])
        paused_until = now + pause
        fields.update(paused_until=paused_until, progress={**partial.as_json(), "pauses": in_a_row})
        logger.warning(
            "Live tail of account %s paused until %s: WeChat answered %s.", account_id, paused_until, exc.errcode
        )
    else:
        logger.warning("Live tail of account %s failed: %s", account_id, exc.explanation)
    SyncState.objects.filter(pk=state.pk).update(**fields)
    return TailResult(
        partial.window_start, partial.window_end, partial.pages, partial.records, partial.stored, partial.merged,
        error=exc.explanation, paused_until=paused_until,
    )

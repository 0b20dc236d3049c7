"""Keeping the rollups in step with the archive, and rebuilding them.

`rollups_follow_archive` is the archive listener (messaging.archive). It only notes,
inside the storing transaction, which customers and which UTC hours a change touched
(two bulk inserts into PendingCustomer / PendingHour, no conflict, no lock), and after
the commit asks the sync queue to run `rollups_catch_up`. That task, one worker per
account at a time (a transaction-scoped advisory lock), takes the pending rows in
batches: for every customer it finds the customer's last close (1004) before the
change, deletes the facts that came from records after it and derives them again from
the archive (reports.facts); it recounts the messages of every pending hour; and it
deletes exactly the pending rows it read, in the same transaction. Both are
recomputations from the archive, not increments, so telling it twice about the same
records (a resynced window, a redelivered push) changes nothing, and a provisional
record replaced by WeChat's copy leaves no trace. A beat entry runs the same catch-up
every minute for the case where the broker could not be reached; the reports page says
how many customers are still being counted (`reports.selectors.rollups_pending`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay, TruncHour

from kfadmin.celery import app as celery_app
from messaging.models import MessageRecord
from messaging.services import BROKER_ERRORS
from reports import facts as F
from reports.models import (
    MessageDay,
    MessageHour,
    PendingCustomer,
    PendingHour,
    QueueFact,
    ResponseFact,
    SessionFact,
    TeamHour,
)

logger = logging.getLogger(__name__)

# A customer's place in the archive: records after (time, id) are re-derived.
Anchor = tuple[datetime, int]
_BEGINNING: Anchor = (datetime(1970, 1, 1, tzinfo=UTC), 0)
_FACT_MODELS = (SessionFact, ResponseFact, QueueFact)
_BATCH = 2000
_CUSTOMER = sorted(F.CUSTOMER)
# The first key of the catch-up's advisory lock (the second is the account's id).
_LOCK_CLASS = 7301


def rollups_follow_archive(account_id: int, changes: list[tuple[str, datetime]]) -> None:
    """The archive listener: note the customers and hours that `changes` (records
    stored or deleted) touched, and have the sync queue derive them after the commit."""
    earliest: dict[str, datetime] = {}
    hours: set[int] = set()  # hours since the epoch
    for openid, at in changes:
        seen = earliest.get(openid)
        if seen is None or at < seen:
            earliest[openid] = at
        hours.add(math.floor(at.timestamp() / 3600))
    rollups_mark(
        account_id=account_id, earliest=earliest, hours=[datetime.fromtimestamp(h * 3600, tz=UTC) for h in hours]
    )
    transaction.on_commit(partial(rollups_enqueue, account_id=account_id))


def rollups_mark(*, account_id: int, earliest: dict[str, datetime], hours: Iterable[datetime]) -> None:
    """Append the customers (stale from their time on) and hours to the pending rows."""
    openids, hour_list = sorted(earliest), sorted(set(hours))
    if connection.vendor == "postgresql":
        if openids or hour_list:
            # One statement (one round trip) for both.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"WITH customers AS (INSERT INTO {PendingCustomer._meta.db_table} "
                    "(official_account_id, openid, since) "
                    "SELECT %s, a.openid, a.since FROM unnest(%s::text[], %s::timestamptz[]) AS a(openid, since)) "
                    f"INSERT INTO {PendingHour._meta.db_table} (official_account_id, hour) "
                    "SELECT %s, h FROM unnest(%s::timestamptz[]) AS h",
                    [account_id, openids, [earliest[o] for o in openids], account_id, hour_list],
                )
        return
    PendingCustomer.objects.bulk_create(
        [PendingCustomer(official_account_id=account_id, openid=o, since=earliest[o]) for o in openids]
    )
    PendingHour.objects.bulk_create([PendingHour(official_account_id=account_id, hour=h) for h in hour_list])


def rollups_enqueue(*, account_id: int) -> bool:
    """Ask the sync queue to catch the account's rollups up; when the broker cannot be
    reached the beat's sweep does it within a minute, so this only logs."""
    try:
        celery_app.send_task("reports.tasks.sync_rollups_task", args=(account_id,))
    except BROKER_ERRORS as exc:
        logger.warning("Could not enqueue the rollups of account %s (%s: %s).", account_id, type(exc).__name__, exc)
        return False
    return True


def rollups_catch_up(*, account_id: int, batch: int = _BATCH) -> int:
    """Derive the pending customers and recount the pending hours of the account, a
    batch per transaction, until none is left. Returns the customers derived; 0 at
    once when another worker holds the account (it keeps going until none is left)."""
    derived = 0
    while True:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, account_id])
                    if not cursor.fetchone()[0]:
                        return derived
            customers = list(
                PendingCustomer.objects.filter(official_account_id=account_id)
                .order_by("id")
                .values_list("id", "openid", "since")[:batch]
            )
            hours = list(
                PendingHour.objects.filter(official_account_id=account_id)
                .order_by("id")
                .values_list("id", "hour")[: batch * 4]
            )
            if not customers and not hours:
                return derived
            earliest: dict[str, datetime] = {}
            for _, openid, since in customers:
                if openid not in earliest or since < earliest[openid]:
                    earliest[openid] = since
            # The archive is read after the pending rows: every row read was committed
            # with its records, so the derivation sees them.
            customers_refresh(account_id=account_id, earliest=earliest)
            hours_refresh(account_id=account_id, hours={hour for _, hour in hours})
            PendingCustomer.objects.filter(id__in=[row[0] for row in customers]).delete()
            PendingHour.objects.filter(id__in=[row[0] for row in hours]).delete()
            derived += len(earliest)


def rollups_sweep() -> dict[int, int]:
    """Catch up every account with pending rows (the beat's safety net)."""
    account_ids = set(PendingCustomer.objects.values_list("official_account_id", flat=True).distinct())
    account_ids |= set(PendingHour.objects.values_list("official_account_id", flat=True).distinct())
    return {account_id: rollups_catch_up(account_id=account_id) for account_id in sorted(account_ids)}


def _hour(at: datetime) -> datetime:
    return datetime.fromtimestamp(math.floor(at.timestamp() / 3600) * 3600, tz=UTC)


# ------------------------------------------------------------------ customers


def customers_refresh(*, account_id: int, earliest: dict[str, datetime]) -> int:
    """Derive again the facts of each customer from their last close before
    `earliest[openid]` on. Returns the number of facts written."""
    written = 0
    items = sorted(earliest.items())
    for start in range(0, len(items), _BATCH):
        chunk = dict(items[start : start + _BATCH])
        anchors = _anchors(account_id, chunk)
        _facts_delete(account_id, anchors)
        written += _facts_write(account_id, _derive(_records_after(account_id, anchors)))
    return written


def _anchors(account_id: int, earliest: dict[str, datetime]) -> dict[str, Anchor]:
    """Each customer's last close (1004) before their earliest change, or the beginning."""
    if connection.vendor == "postgresql":
        openids = list(earliest)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT a.openid, c.time, c.id
                FROM unnest(%s::text[], %s::timestamptz[]) AS a(openid, lo)
                JOIN LATERAL (
                    SELECT r.time, r.id FROM messaging_messagerecord r
                    WHERE r.official_account_id = %s AND r.openid = a.openid
                      AND r.opercode = %s AND r.time < a.lo
                    ORDER BY r.time DESC, r.id DESC LIMIT 1
                ) c ON true
                """,
                (openids, [earliest[o] for o in openids], account_id, F.CLOSED),
            )
            found = {openid: (at, rid) for openid, at, rid in cursor.fetchall()}
    else:
        found = {}
        for openid, lo in earliest.items():
            row = (
                MessageRecord.objects.filter(
                    official_account_id=account_id, openid=openid, opercode=F.CLOSED, time__lt=lo
                )
                .order_by("-time", "-id")
                .values_list("time", "id")
                .first()
            )
            if row is not None:
                found[openid] = row
    return {openid: found.get(openid, _BEGINNING) for openid in earliest}


def _after(anchor: Anchor, time_field: str, id_field: str) -> Q:
    at, rid = anchor
    return Q(**{f"{time_field}__gt": at}) | Q(**{time_field: at, f"{id_field}__gt": rid})


def _facts_delete(account_id: int, anchors: dict[str, Anchor]) -> None:
    if not anchors:
        return
    if connection.vendor == "postgresql":
        openids = list(anchors)
        params = (openids, [anchors[o][0] for o in openids], [anchors[o][1] for o in openids], account_id)
        with connection.cursor() as cursor:
            for model in _FACT_MODELS:
                cursor.execute(
                    f"""
                    DELETE FROM {model._meta.db_table} f
                    USING unnest(%s::text[], %s::timestamptz[], %s::bigint[]) AS a(openid, t, id)
                    WHERE f.official_account_id = %s AND f.openid = a.openid
                      AND (f.origin_time, f.origin_id) > (a.t, a.id)
                    """,
                    params,
                )
        return
    for openid, anchor in anchors.items():
        for model in _FACT_MODELS:
            model.objects.filter(
                _after(anchor, "origin_time", "origin_id"), official_account_id=account_id, openid=openid
            ).delete()


def _records_after(account_id: int, anchors: dict[str, Anchor]) -> Iterator[tuple[str, F.Rec]]:
    """The customers' records after their anchors, by customer, in archive order."""
    if not anchors:
        return
    if connection.vendor == "postgresql":
        openids = list(anchors)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT r.openid, r.id, r.time, r.worker, r.opercode
                FROM unnest(%s::text[], %s::timestamptz[], %s::bigint[]) AS a(openid, t, id)
                JOIN messaging_messagerecord r
                  ON r.official_account_id = %s AND r.openid = a.openid AND (r.time, r.id) > (a.t, a.id)
                ORDER BY r.openid, r.time, r.id
                """,
                [openids, [anchors[o][0] for o in openids], [anchors[o][1] for o in openids], account_id],
            )
            for openid, rid, at, worker, opercode in cursor.fetchall():
                yield openid, F.Rec(rid, at, worker, opercode)
        return
    for openid in sorted(anchors):
        rows = (
            MessageRecord.objects.filter(_after(anchors[openid], "time", "id"), official_account_id=account_id, openid=openid)
            .order_by("time", "id")
            .values_list("id", "time", "worker", "opercode")
        )
        for rid, at, worker, opercode in rows:
            yield openid, F.Rec(rid, at, worker, opercode)


def _derive(records: Iterable[tuple[str, F.Rec]]) -> Iterator[tuple[str, F.Facts]]:
    return F.facts_by_customer(records)


# The facts' columns and their types for the binary COPY (PostgreSQL).
_SESSION_COLUMNS = (
    ("official_account_id", "int8"), ("openid", "text"), ("worker", "text"), ("origin_time", "timestamptz"),
    ("origin_id", "int8"), ("start_code", "int2"), ("started_at", "timestamptz"), ("queued_at", "timestamptz"),
    ("asked_at", "timestamptz"), ("first_reply_at", "timestamptz"), ("ended_at", "timestamptz"),
    ("end_code", "int2"), ("messages_in", "int4"), ("messages_out", "int4"),
)
_RESPONSE_COLUMNS = (
    ("official_account_id", "int8"), ("openid", "text"), ("worker", "text"), ("origin_time", "timestamptz"),
    ("origin_id", "int8"), ("asked_at", "timestamptz"), ("answered_at", "timestamptz"), ("seconds", "int4"),
    ("first", "bool"),
)
_QUEUE_COLUMNS = (
    ("official_account_id", "int8"), ("openid", "text"), ("worker", "text"), ("origin_time", "timestamptz"),
    ("origin_id", "int8"), ("queued_at", "timestamptz"), ("ended_at", "timestamptz"), ("outcome", "text"),
)


def _facts_write(account_id: int, derived: Iterable[tuple[str, F.Facts]]) -> int:
    """Write the derived facts: a binary COPY per table on PostgreSQL, else bulk inserts."""
    sessions: list[tuple] = []
    responses: list[tuple] = []
    queue: list[tuple] = []
    for openid, found in derived:
        sessions += [
            (
                account_id, openid, s.worker, s.origin_time, s.origin_id, s.start_code, s.started_at,
                s.queued_at, s.asked_at, s.first_reply_at, s.ended_at, s.end_code, s.messages_in, s.messages_out,
            )
            for s in found.sessions
        ]
        responses += [
            (account_id, openid, r.worker, r.origin_time, r.origin_id, r.asked_at, r.answered_at, r.seconds, r.first)
            for r in found.responses
        ]
        queue += [
            (account_id, openid, q.worker, q.origin_time, q.origin_id, q.queued_at, q.ended_at, q.outcome)
            for q in found.queue
        ]
    tables: list[tuple[Any, tuple[tuple[str, str], ...], list[tuple]]] = [
        (SessionFact, _SESSION_COLUMNS, sessions),
        (ResponseFact, _RESPONSE_COLUMNS, responses),
        (QueueFact, _QUEUE_COLUMNS, queue),
    ]
    for model, columns, rows in tables:
        if not rows:
            continue
        if connection.vendor == "postgresql":
            names = ", ".join(f'"{name}"' for name, _ in columns)
            with connection.cursor() as cursor, cursor.copy(
                f"COPY {model._meta.db_table} ({names}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types([kind for _, kind in columns])
                for row in rows:
                    copy.write_row(row)
        else:
            model.objects.bulk_create(
                [model(**{name: value for (name, _), value in zip(columns, row, strict=True)}) for row in rows],
                batch_size=1000,
            )
    return len(sessions) + len(responses) + len(queue)


# ------------------------------------------------------------------ hours


def hours_refresh(*, account_id: int, hours: Iterable[datetime]) -> None:
    """Count again the messages of each UTC hour given (in, out, per worker), then
    sum again the team's hours and the UTC days that contain them."""
    days: set[datetime] = set()
    for start, end in _spans(sorted(set(hours))):
        days.update(_days_between(start, end))
        MessageHour.objects.filter(official_account_id=account_id, hour__gte=start, hour__lt=end).delete()
        counts = (
            MessageRecord.objects.filter(
                official_account_id=account_id, time__gte=start, time__lt=end,
                opercode__in=[*_CUSTOMER, F.AGENT],
            )
            .annotate(at=TruncHour("time", tzinfo=UTC))
            .values("at", "worker")
            .annotate(
                n_in=Count("id", filter=Q(opercode__in=_CUSTOMER)),
                n_out=Count("id", filter=Q(opercode=F.AGENT)),
            )
            .order_by()
        )
        MessageHour.objects.bulk_create(
            [
                MessageHour(
                    official_account_id=account_id, hour=row["at"], worker=row["worker"],
                    messages_in=row["n_in"], messages_out=row["n_out"],
                )
                for row in counts
            ],
            batch_size=1000,
        )
        _team_hours_refresh(account_id, start, end)
    for start, end in _spans(sorted(days), step=timedelta(days=1)):
        _days_refresh(account_id, start, end)


def _team_hours_refresh(account_id: int, start: datetime, end: datetime) -> None:
    """The team's hours of [start, end): the sums of the counted hours."""
    TeamHour.objects.filter(official_account_id=account_id, hour__gte=start, hour__lt=end).delete()
    sums = (
        MessageHour.objects.filter(official_account_id=account_id, hour__gte=start, hour__lt=end)
        .values("hour").annotate(n_in=Sum("messages_in"), n_out=Sum("messages_out")).order_by()
    )
    TeamHour.objects.bulk_create(
        [
            TeamHour(official_account_id=account_id, hour=row["hour"], messages_in=row["n_in"], messages_out=row["n_out"])
            for row in sums
        ],
        batch_size=1000,
    )


def _days_refresh(account_id: int, start: datetime, end: datetime) -> None:
    """The UTC days of [start, end) (midnights): the sums of their counted hours."""
    MessageDay.objects.filter(official_account_id=account_id, day__gte=start, day__lt=end).delete()
    sums = (
        MessageHour.objects.filter(official_account_id=account_id, hour__gte=start, hour__lt=end)
        .annotate(at=TruncDay("hour", tzinfo=UTC))
        .values("at", "worker").annotate(n_in=Sum("messages_in"), n_out=Sum("messages_out")).order_by()
    )
    MessageDay.objects.bulk_create(
        [
            MessageDay(
                official_account_id=account_id, day=row["at"], worker=row["worker"],
                messages_in=row["n_in"], messages_out=row["n_out"],
            )
            for row in sums
        ],
        batch_size=1000,
    )


def _day(at: datetime) -> datetime:
    return datetime.fromtimestamp(math.floor(at.timestamp() / 86400) * 86400, tz=UTC)


def _days_between(start: datetime, end: datetime) -> Iterator[datetime]:
    """The UTC midnights of the days that [start, end) touches."""
    day = _day(start)
    while day < end:
        yield day
        day += timedelta(days=1)


def _spans(hours: Sequence[datetime], step: timedelta = timedelta(hours=1)) -> Iterator[tuple[datetime, datetime]]:
    """Contiguous runs of hours (or days, with `step`) as [start, end) spans."""
    start = end = None
    for hour in hours:
        if end is not None and hour == end:
            end = hour + step
            continue
        if start is not None and end is not None:
            yield start, end
        start, end = hour, hour + step
    if start is not None and end is not None:
        yield start, end


# ------------------------------------------------------------------ rebuild


def rollups_rebuild(*, account_id: int, since: datetime | None = None) -> tuple[int, int]:
    """Derive the account's rollups again from the archive (all of it, or from the
    last close before `since` of every customer with records since then). Returns
    (customers, facts written)."""
    records = MessageRecord.objects.filter(official_account_id=account_id)
    if since is not None:
        records = records.filter(time__gte=since)
    openids = list(records.order_by().values_list("openid", flat=True).distinct())
    written = 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The catch-up's lock, waited for: a catch-up deriving the same customers
            # meanwhile would find the rebuild's deletes uncommitted and write its
            # facts beside the rebuild's (the fact tables have no unique key).
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, account_id])
        if since is None:
            for model in (*_FACT_MODELS, MessageHour, MessageDay, TeamHour):
                model.objects.filter(official_account_id=account_id).delete()
            written = _facts_write_batched(account_id, _all_records(account_id))
        else:
            written = customers_refresh(account_id=account_id, earliest={o: since for o in openids})
        first = records.order_by("time").values_list("time", flat=True).first()
        last = records.order_by("-time").values_list("time", flat=True).first()
        if first is not None and last is not None:
            hours_refresh_span(account_id=account_id, start=_hour(first), end=_hour(last) + timedelta(hours=1))
    return len(openids), written


def _all_records(account_id: int) -> Iterator[tuple[str, F.Rec]]:
    rows = (
        MessageRecord.objects.filter(official_account_id=account_id)
        .order_by("openid", "time", "id")
        .values_list("openid", "id", "time", "worker", "opercode")
    )
    for openid, rid, at, worker, opercode in rows.iterator(chunk_size=20000):
        yield openid, F.Rec(rid, at, worker, opercode)


def _facts_write_batched(account_id: int, records: Iterable[tuple[str, F.Rec]]) -> int:
    written = 0
    batch: list[tuple[str, F.Facts]] = []
    for item in F.facts_by_customer(records):
        batch.append(item)
        if len(batch) >= _BATCH:
            written += _facts_write(account_id, batch)
            batch = []
    return written + _facts_write(account_id, batch)


def hours_refresh_span(*, account_id: int, start: datetime, end: datetime) -> None:
    """Recount every hour of [start, end), a UTC day at a time."""
    while start < end:
        stop = min(_day(start) + timedelta(days=1), end)
        hours_refresh(account_id=account_id, hours=_hours_between(start, stop))
        start = stop


def _hours_between(start: datetime, end: datetime) -> Iterator[datetime]:
    step = timedelta(hours=1)
    while start < end:
        yield start
        start += step

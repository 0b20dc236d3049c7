"""Small archives built by hand for the reports' tests (the worked example of
docs/reports.md), and the rollups read back as comparable tuples."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from messaging.archive import archive_changed
from messaging.models import MessageRecord, record_digest
from reports.models import MessageDay, MessageHour, QueueFact, ResponseFact, SessionFact, TeamHour
from reports.services import rollups_catch_up

DAY = date(2026, 3, 2)  # a Monday; 10:00 UTC is 18:00 in Asia/Shanghai


def utc(hh: int, mm: int, ss: int = 0, *, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC)


def example(wechat_id: str) -> list[tuple[datetime, int, str, str, str]]:
    """(time, opercode, agent prefix or "", openid, text) of the worked example."""
    return [
        # Customer A: writes, queues, xiaomei accepts, answers twice, transfers to ahua.
        (utc(10, 0, 0), 2001, "", "oA", "hi"),
        (utc(10, 0, 5), 1000, "", "oA", ""),
        (utc(10, 2, 5), 1001, "xiaomei", "oA", ""),
        (utc(10, 3, 5), 2002, "xiaomei", "oA", "hello"),
        (utc(10, 4, 0), 2003, "xiaomei", "oA", "where is my order?"),
        (utc(10, 4, 30), 2003, "xiaomei", "oA", "??"),
        (utc(10, 5, 0), 2002, "xiaomei", "oA", "checking"),
        (utc(10, 6, 0), 1003, "ahua", "oA", ""),
        (utc(10, 7, 0), 2003, "ahua", "oA", "still there?"),
        (utc(10, 7, 40), 2002, "ahua", "oA", "yes"),
        (utc(10, 10, 0), 1004, "ahua", "oA", ""),
        # Customer B: queues without writing, ahua accepts after 5 minutes, never answers.
        (utc(11, 0, 0), 1000, "", "oB", ""),
        (utc(11, 5, 0), 1001, "ahua", "oB", ""),
        (utc(11, 6, 0), 2003, "ahua", "oB", "hello?"),
        (utc(11, 20, 0), 1004, "ahua", "oB", ""),
        # Customer C: writes, queues, leaves the queue unserved.
        (utc(12, 0, 0), 2001, "", "oC", "=HYPERLINK(1)"),
        (utc(12, 0, 1), 1000, "", "oC", ""),
        (utc(12, 1, 0), 1004, "", "oC", ""),
        # Customer D: xiaomei starts a session (kfadmin's own create), writes first.
        (utc(13, 0, 0), 1002, "xiaomei", "oD", ""),
        (utc(13, 0, 10), 2002, "xiaomei", "oD", "your parcel shipped"),
        (utc(13, 5, 0), 2003, "xiaomei", "oD", "thanks"),
        (utc(13, 5, 30), 2002, "xiaomei", "oD", "you are welcome"),
    ]


def store(account, rows, *, source: str = MessageRecord.Source.SYNC, tell: bool = True) -> list[MessageRecord]:
    """Archive the rows (as the sync would) and tell the archive's listeners."""
    stored = []
    for at, opercode, prefix, openid, text in rows:
        worker = f"{prefix}@{account.wechat_id}" if prefix else ""
        digest = record_digest(worker, openid, opercode, text)
        seq = MessageRecord.objects.filter(official_account=account, time=at, digest=digest).count()
        stored.append(
            MessageRecord.objects.create(
                official_account=account, time=at, worker=worker, openid=openid, opercode=opercode,
                text=text, digest=digest, seq=seq, source=source,
            )
        )
        if tell:
            archive_changed(account_id=account.pk, changes=[(openid, at)])
    if tell:
        rollups_catch_up(account_id=account.pk)  # what the sync queue runs after the commit
    return stored


def rollups(account) -> dict[str, set[tuple]]:
    """Every rollup row of the account, without ids (after the pending catch-up)."""
    rollups_catch_up(account_id=account.pk)
    of = {"official_account": account}
    return {
        "sessions": set(
            SessionFact.objects.filter(**of).values_list(
                "openid", "worker", "origin_time", "start_code", "started_at", "queued_at", "asked_at",
                "first_reply_at", "ended_at", "end_code", "messages_in", "messages_out",
            )
        ),
        "responses": set(
            ResponseFact.objects.filter(**of).values_list(
                "openid", "worker", "origin_time", "asked_at", "answered_at", "seconds", "first"
            )
        ),
        "queue": set(
            QueueFact.objects.filter(**of).values_list("openid", "worker", "queued_at", "ended_at", "outcome")
        ),
        "hours": set(
            MessageHour.objects.filter(**of).values_list("hour", "worker", "messages_in", "messages_out")
        ),
        "days": set(MessageDay.objects.filter(**of).values_list("day", "worker", "messages_in", "messages_out")),
        "team_hours": set(TeamHour.objects.filter(**of).values_list("hour", "messages_in", "messages_out")),
    }


def shift(rows, delta: timedelta):
    return [(at + delta, *rest) for at, *rest in rows]

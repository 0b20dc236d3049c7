"""What a customer's records say happened: sessions, answers and queue waits.

A pure function of one customer's records in archive order (time, then id), written
once and used by both the incremental refresh and the rebuild, and by the benchmark's
"straight from the archive" baseline. docs/reports.md defines every figure in these
words; the rules:

- 1000 puts the customer in the queue (a second 1000 while queued changes nothing).
- 1001, 1002, 1005 start a session held by the record's agent; a start while the
  customer is queued ends the queue wait as served. 1003 (transfer) ends the holding
  agent's part as transferred and starts the new agent's (the record names the new
  agent); with no session open it just starts one.
- 1004 closes the session, or ends a queue wait as left, and forgets everything: no
  fact crosses a close, which is what lets a refresh restart after one.
- A customer message (2001, 2003) is unanswered until an agent message (2002). In a
  session, the first answer is the first response (timed from the start when the
  customer was already waiting, else from their first unanswered message), later
  ones are replies (timed from the customer's first unanswered message). An agent
  message outside a session answers too, untimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

QUEUED = 1000
STARTS = frozenset({1001, 1002, 1005})
TRANSFERRED = 1003
CLOSED = 1004
CUSTOMER = frozenset({2001, 2003})
AGENT = 2002
SUPERSEDED = 0


class Rec(NamedTuple):
    """The parts of a record the facts need."""

    id: int
    time: datetime
    worker: str
    opercode: int


@dataclass
class Session:
    worker: str
    origin_time: datetime
    origin_id: int
    start_code: int
    started_at: datetime
    queued_at: datetime | None = None
    asked_at: datetime | None = None
    first_reply_at: datetime | None = None
    ended_at: datetime | None = None
    end_code: int | None = None
    messages_in: int = 0
    messages_out: int = 0


@dataclass
class Response:
    worker: str
    origin_time: datetime
    origin_id: int
    asked_at: datetime
    answered_at: datetime
    first: bool

    @property
    def seconds(self) -> int:
        return int((self.answered_at - self.asked_at).total_seconds())


@dataclass
class QueueWait:
    origin_time: datetime
    origin_id: int
    queued_at: datetime
    ended_at: datetime | None = None
    outcome: str = ""  # "" still waiting, "served", "left"
    worker: str = ""


@dataclass
class Facts:
    sessions: list[Session] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    queue: list[QueueWait] = field(default_factory=list)


def customer_facts(records: Iterable[Rec]) -> Facts:
    """The facts of one customer's records, in archive order, from a clean start (the
    customer's first record, or just after a close)."""
    facts = Facts()
    session: Session | None = None
    queue: QueueWait | None = None
    pending: datetime | None = None  # the customer's first unanswered message

    def end_session(at: datetime, code: int) -> None:
        nonlocal session
        if session is not None:
            session.ended_at, session.end_code = at, code
            session = None

    for rec in records:
        code, at = rec.opercode, rec.time
        if code == QUEUED:
            if queue is None:
                queue = QueueWait(origin_time=at, origin_id=rec.id, queued_at=at)
                facts.queue.append(queue)
        elif code in STARTS or code == TRANSFERRED:
            end_session(at, TRANSFERRED if code == TRANSFERRED else SUPERSEDED)
            session = Session(
                worker=rec.worker, origin_time=at, origin_id=rec.id, start_code=code, started_at=at
            )
            facts.sessions.append(session)
            if queue is not None:
                queue.ended_at, queue.outcome, queue.worker = at, "served", rec.worker
                session.queued_at = queue.queued_at
                queue = None
            if pending is not None:
                session.asked_at = at
        elif code == CLOSED:
            end_session(at, CLOSED)
            if queue is not None:
                queue.ended_at, queue.outcome = at, "left"
            queue, pending = None, None
        elif code in CUSTOMER:
            if pending is None:
                pending = at
            if session is not None:
                session.messages_in += 1
                if session.asked_at is None:
                    session.asked_at = at
        elif code == AGENT:
            if session is not None:
                session.messages_out += 1
                if pending is not None:
                    first = session.first_reply_at is None
                    asked = session.asked_at if first else max(pending, session.started_at)
                    assert asked is not None
                    facts.responses.append(
                        Response(
                            worker=rec.worker, origin_time=at, origin_id=rec.id,
                            asked_at=asked, answered_at=at, first=first,
                        )
                    )
                    if first:
                        session.first_reply_at = at
            pending = None
    return facts


def facts_by_customer(records: Iterable[tuple[str, Rec]]) -> Iterator[tuple[str, Facts]]:
    """Facts of records ordered by customer, then archive order: (openid, facts)."""
    openid: str | None = None
    batch: list[Rec] = []
    for rec_openid, rec in records:
        if rec_openid != openid:
            if openid is not None:
                yield openid, customer_facts(batch)
            openid, batch = rec_openid, []
        batch.append(rec)
    if openid is not None:
        yield openid, customer_facts(batch)

"""Keeping kfadmin's copy of the waiting queue and the open sessions in step with WeChat.

As in `accounts.sync`: read from WeChat first, then write in one short transaction.
Writers that create or move sessions lock the customer rows first (in primary-key
order), then the session rows, so the queue sync, the sessions sync and the callback
receiver serialise per customer instead of tripping over the "one live session per
customer" constraint. The changes themselves are `sessions_app.transitions`'. A session a callback changed after a sync started reading from
WeChat is newer than what that sync saw, so the sync leaves it alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.clients import wechat_client_for
from accounts.live import SESSIONS, conversation_domain, live_bump
from accounts.models import Agent, OfficialAccount, SyncState
from accounts.sync import agent_get_or_stub, agents_bootstrap, from_unix, sync_state_recording
from kfadmin.wechat import WeChatConflict, WeChatError, WeChatNotFound, WeChatRetryableError
from kfadmin.wechat.types import Session
from sessions_app.auto_assign import auto_assign_run
from sessions_app.models import Customer, KfSession
from sessions_app.services import customers_touch_bulk
from sessions_app.transitions import (
    session_mark_closed,
    session_mark_moved,
    session_mark_open,
    session_new_open,
    session_new_waiting,
)

# Customers who left the queue since the last run are looked up one by one
# (getsession) to learn whether an agent took them; at most this many per run, the
# rest are closed (the sessions sync reopens any that an agent actually holds).
QUEUE_RESOLVE_LIMIT = 20


def _customers_locked(account: OfficialAccount, first_seen: dict[str, datetime]) -> dict[str, Customer]:
    """Create missing customers, then lock all of them in primary-key order."""
    Customer.objects.bulk_create(
        [
            Customer(official_account=account, openid=openid, first_seen_at=at, last_seen_at=at)
            for openid, at in first_seen.items()
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    customers = (
        Customer.objects.select_for_update()
        .filter(official_account=account, openid__in=list(first_seen))
        .order_by("pk")
    )
    return {customer.openid: customer for customer in customers}


def _live_sessions_locked(**filters) -> dict[int, KfSession]:
    sessions = KfSession.objects.select_for_update().exclude(state=KfSession.State.CLOSED).filter(**filters)
    return {session.customer_id: session for session in sessions.order_by("pk")}


def _sessions_bump(account_id: int, customer_ids: set[int]) -> None:
    """The pages showing these customers' sessions render on their next poll."""
    openids = Customer.objects.filter(pk__in=customer_ids).values_list("openid", flat=True) if customer_ids else []
    live_bump(account_id, SESSIONS, *(conversation_domain(openid) for openid in sorted(openids)))


# --------------------------------------------------------------------------- queue


@dataclass(frozen=True)
class QueueSyncResult:
    count: int
    listed: int
    queued: int
    accepted: int
    closed: int
    # Handed to agents by auto-assignment after the queue was stored (when it is on).
    auto_assigned: int = 0
    auto_failed: int = 0


def queue_sync(*, account_id: int) -> QueueSyncResult:
    """getwaitcase → the account's true waiting count, a waiting session for every
    listed customer, and an outcome for customers who left the queue: open with the
    agent who took them, or closed. Then, when the account's auto-assignment is on,
    waiting customers are handed to agents (`sessions_app.auto_assign`).

    WeChat lists at most 100 waiting customers; when the list is cut short, waiting
    sessions beyond it are left as they are.
    """
    account = OfficialAccount.objects.get(pk=account_id)
    with sync_state_recording(account_id=account_id, job=SyncState.Job.QUEUE):
        client = wechat_client_for(account)
        started = timezone.now()
        wait = client.get_wait_case()
        listed = {
            case.openid: from_unix(case.latest_time) or started
            for case in wait.waitcaselist
            if case.openid
        }
        complete = len(wait.waitcaselist) >= wait.count
        outcomes: dict[str, Session | None] = {}
        if complete:
            left = (
                KfSession.objects.filter(official_account=account, state=KfSession.State.WAITING)
                .exclude(customer__openid__in=list(listed))
                .order_by("created_at", "pk")
                .values_list("customer__openid", flat=True)
            )
            for openid in left[:QUEUE_RESOLVE_LIMIT]:
                try:
                    outcomes[openid] = client.get_session(openid)
                except WeChatRetryableError:
                    raise
                except WeChatError:
                    outcomes[openid] = None  # e.g. 40003: nothing to wait for any more
        result = _queue_store(
            account, count=wait.count, listed=listed, complete=complete, outcomes=outcomes, started=started
        )
        auto = auto_assign_run(account=account)
        if auto is not None:
            result = replace(result, auto_assigned=auto.assigned, auto_failed=auto.failed)
        return result


@transaction.atomic
def _queue_store(
    account: OfficialAccount,
    *,
    count: int,
    listed: dict[str, datetime],
    complete: bool,
    outcomes: dict[str, Session | None],
    started: datetime,
) -> QueueSyncResult:
    now = timezone.now()
    OfficialAccount.objects.filter(pk=account.pk).update(waiting_count=max(count, 0))
    # latest_time is the customer's latest message: it opens their reply window.
    # This also creates the customers and locks their rows.
    customers_touch_bulk(account, listed.items())
    customer_ids = dict(
        Customer.objects.filter(official_account=account, openid__in=list(listed)).values_list("openid", "pk")
    )
    shown: set[int] = set()  # customers whose session the pages show differently now
    to_update, to_create = _queue_listed_sessions(
        account, listed=listed, customer_ids=customer_ids, started=started, now=now, shown=shown
    )
    accepted = closed = 0
    if complete:
        left, accepted, closed = _queue_left_settle(
            account, listed_ids=list(customer_ids.values()), outcomes=outcomes, started=started, now=now
        )
        to_update += left
        shown.update(session.customer_id for session in left)
    shown.update(session.customer_id for session in to_create)
    # A run that only confirms the queue bumps nothing: its polls stay 204.
    if shown or account.waiting_count != max(count, 0):
        _sessions_bump(account.pk, shown)

    KfSession.objects.bulk_update(
        to_update, ["state", "agent", "accepted_at", "closed_at", "latest_time", "last_synced_at", "updated_at"]
    )
    KfSession.objects.bulk_create(to_create)
    return QueueSyncResult(
        count=count, listed=len(listed), queued=len(to_create), accepted=accepted, closed=closed
    )


def _queue_listed_sessions(
    account: OfficialAccount,
    *,
    listed: dict[str, datetime],
    customer_ids: dict[str, int],
    started: datetime,
    now: datetime,
    shown: set[int],
) -> tuple[list[KfSession], list[KfSession]]:
    """A waiting session for every customer in the queue: (sessions to update,
    sessions to create)."""
    live = _live_sessions_locked(official_account=account, customer_id__in=list(customer_ids.values()))
    to_update: list[KfSession] = []
    to_create: list[KfSession] = []
    for openid, latest in listed.items():
        customer_id = customer_ids[openid]
        session = live.get(customer_id)
        if session is not None and session.state == KfSession.State.OPEN:
            if session.updated_at >= started:
                continue  # opened after we read the queue: the queue answer is older
            # Served before, queued again: that session ended.
            session_mark_closed(session, at=now)
            session.updated_at = now
            to_update.append(session)
            shown.add(customer_id)
            session = None
        if session is None:
            to_create.append(session_new_waiting(account=account, customer_id=customer_id, at=latest, now=now))
        else:
            if session.latest_time != latest:
                shown.add(customer_id)
            session.latest_time = latest
            session.last_synced_at = now
            session.updated_at = now
            to_update.append(session)
    return to_update, to_create


def _queue_left_settle(
    account: OfficialAccount,
    *,
    listed_ids: list[int],
    outcomes: dict[str, Session | None],
    started: datetime,
    now: datetime,
) -> tuple[list[KfSession], int, int]:
    """The waiting sessions of customers who left the queue: open with the agent
    getsession named, or closed. Returns (sessions to update, accepted, closed)."""
    left = KfSession.objects.select_for_update(of=("self",)).filter(
        official_account=account, state=KfSession.State.WAITING, updated_at__lt=started
    ).exclude(customer_id__in=listed_ids).select_related("customer")
    to_update: list[KfSession] = []
    accepted = closed = 0
    for session in left.order_by("pk"):
        outcome = outcomes.get(session.customer.openid)
        if outcome is not None and outcome.kf_account:
            agent = agent_get_or_stub(account=account, kf_account=outcome.kf_account)
            session_mark_open(session, agent=agent, at=from_unix(outcome.createtime) or now)
            accepted += 1
        else:
            session_mark_closed(session, at=now)
            closed += 1
        session.last_synced_at = now
        session.updated_at = now
        to_update.append(session)
    return to_update, accepted, closed


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class SessionsSyncResult:
    agents: int
    open: int
    opened: int
    transferred: int
    closed: int


def sessions_sync(*, account_id: int, heartbeat: Callable[[], None] | None = None) -> SessionsSyncResult:
    """getsessionlist for every bound agent → an open session per listed customer
    (a waiting one becomes open, a transfer moves the row to the new agent); open
    sessions no agent lists any more are closed. `heartbeat` (the task's claim
    renewal) runs after each agent's list: up to 100 calls outlast one lease."""
    account = OfficialAccount.objects.get(pk=account_id)
    agents_bootstrap(account_id=account_id)
    with sync_state_recording(account_id=account_id, job=SyncState.Job.SESSIONS):
        client = wechat_client_for(account)
        started = timezone.now()
        # Bound agents, plus any agent a callback saw take a session before the agents
        # sync listed its binding: its sessions are only closed if WeChat says so.
        agents = list(
            Agent.objects.listed().filter(official_account=account)
            .filter(Q(kf_wx__gt="") | Q(sessions__state=KfSession.State.OPEN))
            .distinct()
            .order_by("kf_account")
        )
        lists: dict[Agent, list[Session]] = {}
        for agent in agents:
            try:
                lists[agent] = client.get_session_list(agent.kf_account).sessionlist
            except (WeChatNotFound, WeChatConflict):
                # Deleted or unbound since the last agents sync: it serves nobody.
                lists[agent] = []
            if heartbeat is not None:
                heartbeat()
        return _sessions_store(account, lists=lists, started=started)


@transaction.atomic
def _sessions_store(
    account: OfficialAccount, *, lists: dict[Agent, list[Session]], started: datetime
) -> SessionsSyncResult:
    now = timezone.now()
    serving = _serving(lists, now=now)
    customers = _customers_locked(account, {openid: at for openid, (_, at) in serving.items()})
    live = _live_sessions_locked(official_account=account)
    writes = _SessionWrites()
    opened, transferred = _sessions_serve(
        account, serving=serving, customers=customers, live=live, started=started, now=now, writes=writes
    )
    # What is left in `live` is listed by no agent.
    closed = _sessions_close_unlisted(live.values(), started=started, now=now, writes=writes)
    writes.save(["state", "agent", "accepted_at", "closed_at", "last_synced_at", "updated_at"], account_id=account.pk)
    return SessionsSyncResult(
        agents=len(lists),
        open=len(serving),
        opened=opened,
        transferred=transferred,
        closed=closed,
    )


def _serving(lists: dict[Agent, list[Session]], *, now: datetime) -> dict[str, tuple[Agent, datetime]]:
    """openid -> (agent, accepted at) from every agent's list. During a transfer two
    snapshots may both list a customer: the later createtime wins."""
    serving: dict[str, tuple[Agent, datetime]] = {}
    for agent, sessions in lists.items():
        for item in sessions:
            if not item.openid:
                continue
            at = from_unix(item.createtime) or now
            if item.openid not in serving or at > serving[item.openid][1]:
                serving[item.openid] = (agent, at)
    return serving


@dataclass
class _SessionWrites:
    """The sessions one sync run changes, written at its end in two statements."""

    to_update: list[KfSession] = field(default_factory=list)
    to_create: list[KfSession] = field(default_factory=list)
    # Customers whose session changed in a way the pages show (not only re-stamped).
    shown: set[int] = field(default_factory=set)

    def changed(self, session: KfSession, *, now: datetime) -> None:
        # bulk_update skips auto_now: the sync stamps updated_at itself.
        session.last_synced_at = now
        session.updated_at = now
        self.to_update.append(session)

    def save(self, fields: list[str], *, account_id: int) -> None:
        KfSession.objects.bulk_update(self.to_update, fields)
        KfSession.objects.bulk_create(self.to_create)
        shown = self.shown | {session.customer_id for session in self.to_create}
        if shown:
            _sessions_bump(account_id, shown)


def _sessions_serve(
    account: OfficialAccount,
    *,
    serving: dict[str, tuple[Agent, datetime]],
    customers: dict[str, Customer],
    live: dict[int, KfSession],
    started: datetime,
    now: datetime,
    writes: _SessionWrites,
) -> tuple[int, int]:
    """An open session for every listed customer, with the agent who lists them; takes
    the sessions it handles out of `live`. Returns (opened, transferred)."""
    opened = transferred = 0
    for openid, (agent, at) in serving.items():
        customer = customers[openid]
        session = live.pop(customer.pk, None)
        if session is None:
            writes.to_create.append(session_new_open(account=account, customer=customer, agent=agent, at=at, now=now))
            opened += 1
            continue
        if session.state == KfSession.State.WAITING:
            session_mark_open(session, agent=agent, at=at)
            writes.shown.add(session.customer_id)
            opened += 1
        elif session.agent_id != agent.pk:
            if session.updated_at >= started:
                continue  # a callback moved it after we read the lists
            session_mark_moved(session, agent=agent)
            writes.shown.add(session.customer_id)
            transferred += 1
        if session.accepted_at is None:
            session.accepted_at = at
            writes.shown.add(session.customer_id)
        writes.changed(session, now=now)
    return opened, transferred


def _sessions_close_unlisted(
    sessions: Iterable[KfSession], *, started: datetime, now: datetime, writes: _SessionWrites
) -> int:
    """Open sessions nobody lists any more ended (unless changed since the lists were
    read); waiting ones are the queue sync's. Returns how many were closed."""
    closed = 0
    for session in sessions:
        if session.state == KfSession.State.OPEN and session.updated_at < started:
            session_mark_closed(session, at=now)
            writes.changed(session, now=now)
            writes.shown.add(session.customer_id)
            closed += 1
    return closed

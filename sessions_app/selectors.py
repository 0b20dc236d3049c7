"""Reads for the queue, the sessions board and one customer's conversation header.

Everything here reads kfadmin's own copy (PostgreSQL); nothing calls WeChat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Agent, OfficialAccount
from messaging.models import MessageRecord, OutboundMessage
from sessions_app.models import Customer, KfSession
from sessions_app.services import EVENT_WINDOW, MESSAGE_WINDOW

# getwaitcase lists at most this many customers (wechat-kf-api.md §5.5).
WAITCASE_LIMIT = 100
# The typing indicator needs a customer interaction at most this long ago (§6.3).
TYPING_INTERACTION_WINDOW = timedelta(seconds=30)


def _last_customer_text() -> Subquery:
    return Subquery(
        MessageRecord.objects.filter(
            official_account=OuterRef("official_account"),
            openid=OuterRef("customer__openid"),
            opercode__in=MessageRecord.OperCode.CUSTOMER,
        )
        .order_by("-time", "-id")
        .values("text")[:1]
    )


# A customer waiting longer than this is shown as waiting too long.
LONG_WAIT = timedelta(minutes=5)

# The queue and the sessions board show a customer by openid only. The board lists
# every open session of the account (thousands), and each timestamp column costs a
# few microseconds to parse per row (Django's psycopg 3 loader for timestamptz is
# Python), so the customer's reply-window columns are not fetched for these lists.
# Reading one of them later still works (Django loads it then, one query per row).
_BOARD_CUSTOMER_DEFERRED = (
    "customer__first_seen_at",
    "customer__last_seen_at",
    "customer__last_message_at",
    "customer__window_expires_at",
    "customer__window_remaining",
    "customer__last_interaction_at",
)


def _with_durations(sessions: list[KfSession], since_field: str, now: datetime) -> list[KfSession]:
    """Attach `elapsed` (a timedelta since `since_field`) and `waited_long`."""
    for session in sessions:
        since = getattr(session, since_field) or now
        session.elapsed = max(now - since, timedelta(0))
        session.waited_long = session.elapsed >= LONG_WAIT
    return sessions


def queue_waiting(*, account: OfficialAccount, now: datetime | None = None) -> list[KfSession]:
    """Customers waiting for an agent, in arrival order, with their last message and
    how long they have waited."""
    sessions = (
        KfSession.objects.filter(official_account=account, state=KfSession.State.WAITING)
        .select_related("customer")
        .defer(*_BOARD_CUSTOMER_DEFERRED)
        .annotate(last_text=_last_customer_text())
        .order_by("created_at", "id")
    )
    return _with_durations(list(sessions), "created_at", now or timezone.now())


@dataclass
class AgentLoad:
    """One agent on the sessions board: the open sessions kfadmin knows they hold,
    against the capacity (the overview's `OverviewLoad` shows WeChat's count)."""

    agent: Agent
    capacity: int = 0
    load: int = 0
    # The agent's open sessions, when the board lists them (None: folded away).
    sessions: list[KfSession] | None = None

    @property
    def at_capacity(self) -> bool:
        return self.capacity > 0 and self.load >= self.capacity

    @property
    def load_percent(self) -> int:
        if self.capacity <= 0:
            return 100 if self.load else 0
        return min(100, round(100 * self.load / self.capacity))

    @property
    def load_label(self) -> str:
        return _("%(load)s of %(capacity)s") % {"load": self.load, "capacity": self.capacity}


def _by_availability(loads: list[AgentLoad]) -> list[AgentLoad]:
    """Online agents first, then the busiest, so the supervisor sees who can take more."""
    return sorted(loads, key=lambda g: (not g.agent.is_online, -g.load, g.agent.display_name))


def agent_loads(*, account: OfficialAccount) -> list[AgentLoad]:
    """Every listed agent with the number of open sessions they hold."""
    agents = Agent.objects.listed().filter(official_account=account)
    sessions = KfSession.objects.filter(official_account=account, state=KfSession.State.OPEN)
    counts = dict(sessions.values("agent_id").annotate(n=Count("id")).order_by().values_list("agent_id", "n"))
    return _by_availability(
        [AgentLoad(agent=a, capacity=account.agent_capacity, load=counts.get(a.pk, 0)) for a in agents]
    )


def _open_sessions(*, account: OfficialAccount, agent_ids: list[int]) -> list[KfSession]:
    """The open sessions of these agents, oldest first, with the customer's last message."""
    if not agent_ids:
        return []
    sessions = (
        KfSession.objects.filter(official_account=account, state=KfSession.State.OPEN, agent_id__in=agent_ids)
        .select_related("customer")
        .defer(*_BOARD_CUSTOMER_DEFERRED)
        .annotate(last_text=_last_customer_text())
        .order_by("accepted_at", "id")
    )
    return _with_durations(list(sessions), "accepted_at", timezone.now())


# Up to this many open sessions the board lists every one under its agent; beyond it
# (a large team: 200 agents hold thousands) it shows one line per agent, and the
# sessions of the agent the supervisor picks. Rendering 2,000 sessions every 5 s
# took 2.6 s and sent 2 MB per poll.
BOARD_LIST_ALL_UP_TO = 60


@dataclass
class Board:
    """The open-sessions side of the queue page."""

    groups: list[AgentLoad]  # in display order; `sessions` set on the listed ones
    open_total: int
    folded: bool  # too many sessions to list them all: one agent's at a time
    selected: AgentLoad | None = None
    # Offline agents holding no session, not listed on a folded board.
    idle_offline: int = 0


def sessions_board(
    *, account: OfficialAccount, agent: Agent | None = None, selected_id: int | None = None
) -> Board:
    """Open sessions grouped by agent. With `agent` (the agent role), only theirs.

    A small board lists every agent, idle ones included (free capacity), each with
    their sessions. A large one lists the agents online or holding sessions, with
    the sessions of `selected_id` only."""
    if agent is not None:
        # One agent's own board: their sessions, all of them, counted as listed.
        loads = [
            AgentLoad(agent=a, capacity=account.agent_capacity)
            for a in Agent.objects.listed().filter(official_account=account, pk=agent.pk)
        ]
    else:
        loads = agent_loads(account=account)
    total = sum(g.load for g in loads)
    folded = agent is None and total > BOARD_LIST_ALL_UP_TO
    selected = next((g for g in loads if g.agent.pk == selected_id), None) if folded else None
    if folded:
        groups = [g for g in loads if g.agent.is_online or g.load or g is selected]
        listed = [selected] if selected else []
    else:
        groups = listed = loads
    by_agent = {g.agent.pk: g for g in listed}
    for group in listed:
        group.sessions = []
    # Each session's agent is the group's (already loaded): not joined again per row.
    for session in _open_sessions(account=account, agent_ids=list(by_agent)):
        group = by_agent[session.agent_id]
        session.agent = group.agent
        group.sessions.append(session)
    if agent is not None:
        for group in listed:
            group.load = len(group.sessions)
        total = sum(g.load for g in listed)
    return Board(
        groups=groups, open_total=total, folded=folded, selected=selected, idle_offline=len(loads) - len(groups)
    )


def agent_load(*, account: OfficialAccount, agent: Agent) -> int:
    return KfSession.objects.filter(official_account=account, agent=agent, state=KfSession.State.OPEN).count()


def agent_assign_warnings(*, account: OfficialAccount, agent: Agent) -> list[str]:
    """Why handing a customer to `agent` may go wrong, as sentences (empty: no doubt).

    WeChat refuses an offline agent (65415), and ignores the agent's own auto-accept
    limit, so a full agent simply gets one more customer to neglect.
    """
    warnings: list[str] = []
    name = agent.display_name
    if not agent.is_online:
        warnings.append(
            _(
                "%(name)s is offline. WeChat will refuse the session unless they log in to "
                "the kf client first, and the customer keeps waiting."
            )
            % {"name": name}
        )
    load = agent_load(account=account, agent=agent)
    if account.agent_capacity and load >= account.agent_capacity:
        warnings.append(
            _(
                "%(name)s already holds %(load)s of %(capacity)s sessions. WeChat will hand "
                "them the customer anyway, who may then wait for an answer."
            )
            % {"name": name, "load": load, "capacity": account.agent_capacity}
        )
    return warnings


def live_session_for(*, customer: Customer) -> KfSession | None:
    """The customer's waiting or open session, if any."""
    return (
        KfSession.objects.filter(customer=customer)
        .exclude(state=KfSession.State.CLOSED)
        .select_related("agent")
        .first()
    )


def session_get_live(*, account: OfficialAccount, session_id: int) -> KfSession | None:
    return (
        KfSession.objects.filter(official_account=account, pk=session_id)
        .exclude(state=KfSession.State.CLOSED)
        .select_related("customer", "agent")
        .first()
    )


def customer_get(*, account: OfficialAccount, openid: str) -> Customer | None:
    return Customer.objects.filter(official_account=account, openid=openid).first()


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


@dataclass(frozen=True)
class WindowState:
    """The reply window as kfadmin believes WeChat sees it (wechat-kf-api.md §6.4)."""

    is_open: bool
    remaining: int  # sends left after the ones already queued
    budget: int  # sends the current window granted in total (5 or 3)
    expires_at: datetime | None
    seconds_left: int
    pending: int
    typing_allowed: bool

    # Ended before the customer's last interaction would have let it (an unfollow, or
    # WeChat answering 45015), rather than running out its 48 hours or minute.
    closed_early: bool = False

    @property
    def budget_used_up(self) -> bool:
        return self.seconds_left > 0 and self.remaining <= 0


def customer_window_state(*, customer: Customer | None, now: datetime | None = None) -> WindowState:
    now = now or timezone.now()
    if customer is None:
        return WindowState(False, 0, 0, None, 0, 0, False)
    pending = OutboundMessage.objects.filter(
        customer=customer, status__in=(OutboundMessage.Status.QUEUED, OutboundMessage.Status.SENDING)
    ).count()
    live = customer.window_expires_at is not None and customer.window_expires_at > now
    remaining = max(0, customer.window_remaining - pending) if live else 0
    seconds_left = int((customer.window_expires_at - now).total_seconds()) if live else 0
    # A customer message grants 5 sends for 48 h, an event 3 for a minute.
    budget = 5 if seconds_left > 60 else 3
    typing_allowed = (
        live
        and customer.window_remaining > 0
        and customer.last_interaction_at is not None
        and now - customer.last_interaction_at <= TYPING_INTERACTION_WINDOW
    )
    return WindowState(
        is_open=live and remaining > 0,
        remaining=remaining,
        budget=max(budget, customer.window_remaining),
        expires_at=customer.window_expires_at,
        seconds_left=seconds_left,
        pending=pending,
        typing_allowed=typing_allowed,
        closed_early=not live and _window_closed_early(customer),
    )


def _window_closed_early(customer: Customer) -> bool:
    granted = [
        at + window
        for at, window in ((customer.last_message_at, MESSAGE_WINDOW), (customer.last_interaction_at, EVENT_WINDOW))
        if at is not None
    ]
    return customer.window_expires_at is not None and bool(granted) and customer.window_expires_at < max(granted)


def queue_counts(*, account: OfficialAccount) -> dict[str, int]:
    """Numbers for the page header: waiting (local and WeChat's true total) and open."""
    # Live sessions only: the closed history grows without bound, and with the state in
    # the WHERE clause the (account, state, created_at) index reads just these rows.
    live = (KfSession.State.WAITING, KfSession.State.OPEN)
    counts = KfSession.objects.filter(official_account=account, state__in=live).aggregate(
        waiting=Count("id", filter=Q(state=KfSession.State.WAITING)),
        open=Count("id", filter=Q(state=KfSession.State.OPEN)),
    )
    # WeChat lists at most WAITCASE_LIMIT waiting customers; its count (as of the last
    # queue sync) is the true total only when the list was cut short.
    cut_short = counts["waiting"] >= WAITCASE_LIMIT
    counts["waiting_total"] = max(account.waiting_count, counts["waiting"]) if cut_short else counts["waiting"]
    return counts


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
        pk = self.record.pk if self.record is not None else self.outbound.pk
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
    from messaging.selectors import cursor_decode, cursor_encode

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
        outbound = list(outbound_qs.select_related("agent").order_by("-created_at", "-id")[:limit])
        hidden = _archived_copies(records, outbound, keep=focus_id)
        items = [item for item in items if item.record.pk not in hidden]
        items += [TimelineItem(time=o.created_at, outbound=o) for o in outbound]
    items.sort(key=lambda item: item.sort_key)
    return Timeline(items=items, earlier_cursor=earlier_cursor, is_latest=is_latest, focus_id=focus_id)


# History sync brings a record at most about a day after it was written (24-hour
# windows); the timeline's stamp watches this far back for records arriving late.
TIMELINE_STAMP_LOOKBACK = timedelta(days=3)


def timeline_stamp(*, account: OfficialAccount, openid: str, customer: Customer | None) -> str:
    """What the newest view of a conversation was built from: the newest archived record
    of the last days (ids only grow) and the newest message sent from kfadmin. Equal
    stamps, same timeline: a poll that brings its stamp is answered "nothing new"."""
    since = timezone.now() - TIMELINE_STAMP_LOOKBACK
    newest_record = MessageRecord.objects.filter(official_account=account, openid=openid, time__gte=since).order_by(
        "-id"
    )
    if customer is None:
        record, sent = newest_record.values_list("id", flat=True).first(), None
    else:
        # Both in one query: this runs on every poll of every open conversation.
        newest_sent = OutboundMessage.objects.filter(customer=OuterRef("pk")).order_by("-id")
        record, sent = (
            Customer.objects.filter(pk=customer.pk)
            .values_list(Subquery(newest_record.values("id")[:1]), Subquery(newest_sent.values("id")[:1]))
            .first()
        ) or (None, None)
    return f"{record or 0}.{sent or 0}"


# A send and its copy in WeChat's history are this close in time (as in messaging.sync).
ARCHIVE_COPY_WINDOW = timedelta(seconds=120)


def _archived_copies(records: list[MessageRecord], outbound: list[OutboundMessage], keep: int | None) -> set[int]:
    """Ids of archived records that are copies of messages kfadmin sent (shown once,
    as the send with its status). Each send hides at most one record: same agent,
    the text WeChat's history shows for it, sent within ARCHIVE_COPY_WINDOW."""
    from messaging.services import archive_text

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


def agent_names(*, account: OfficialAccount, kf_accounts: set[str]) -> dict[str, str]:
    """kf account → the agent's nickname, for the given accounts kfadmin knows."""
    if not kf_accounts:
        return {}
    rows = Agent.objects.filter(official_account=account, kf_account__in=kf_accounts).values_list("kf_account", "kf_nick")
    return {kf_account: nick or kf_account for kf_account, nick in rows}


def outbound_stale_before(now: datetime | None = None) -> datetime:
    """Messages created before this and still queued or sending are stuck."""
    from messaging.services import SEND_STALE_AFTER

    return (now or timezone.now()) - SEND_STALE_AFTER


def outbound_get(*, account: OfficialAccount, outbound_id: int) -> OutboundMessage | None:
    return (
        OutboundMessage.objects.filter(official_account=account, pk=outbound_id)
        .select_related("customer", "agent")
        .first()
    )

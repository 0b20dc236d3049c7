"""Reads for the queue, the sessions board, one customer's session and reply window.

Everything here reads kfadmin's own copy (PostgreSQL); nothing calls WeChat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q, Value
from django.db.models.expressions import BaseExpression
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Agent, OfficialAccount
from sessions_app.models import (
    EVENT_BUDGET,
    EVENT_WINDOW,
    MESSAGE_BUDGET,
    MESSAGE_WINDOW,
    AutoAssign,
    Customer,
    CustomerNote,
    Grant,
    KfSession,
)

# getwaitcase lists at most this many customers (wechat-kf-api.md §5.5).
WAITCASE_LIMIT = 100
# The typing indicator needs a customer interaction at most this long ago (§6.3).
TYPING_INTERACTION_WINDOW = timedelta(seconds=30)


def _no_preview() -> BaseExpression:
    return Value("")


# What the customer last wrote, per row of a KfSession queryset: the preview the queue
# and the board show. The archive is messaging's, an app above this one, so messaging
# plugs its subquery in when it loads (MessagingConfig.ready); this app never imports it.
_last_customer_text: Callable[[], BaseExpression] = _no_preview


def session_preview_provide(subquery: Callable[[], BaseExpression]) -> None:
    """Set what the queue and the board show as each customer's last message."""
    global _last_customer_text
    _last_customer_text = subquery


# An open session held longer than this is shown as long (the queue's own threshold
# is the account's `alert_queue_wait_seconds`, which supervisors set).
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
    "customer__last_event_at",
    "customer__event_expires_at",
    "customer__event_remaining",
    "customer__last_interaction_at",
)


def _with_durations(
    sessions: list[KfSession], since_field: str, now: datetime, long_wait: timedelta = LONG_WAIT
) -> list[KfSession]:
    """Attach `elapsed` (a timedelta since `since_field`) and `waited_long`."""
    for session in sessions:
        since = getattr(session, since_field) or now
        # Attached for the pages, not fields of the model.
        elapsed = max(now - since, timedelta(0))
        session.elapsed = elapsed  # type: ignore[attr-defined]
        session.waited_long = elapsed >= long_wait  # type: ignore[attr-defined]
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
    return _with_durations(
        list(sessions), "created_at", now or timezone.now(), timedelta(seconds=account.alert_queue_wait_seconds)
    )


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
    held: dict[int, list[KfSession]] = {pk: [] for pk in by_agent}
    # Each session's agent is the group's (already loaded): not joined again per row.
    for session in _open_sessions(account=account, agent_ids=list(by_agent)):
        assert session.agent_id is not None  # selected by agent
        session.agent = by_agent[session.agent_id].agent
        held[session.agent_id].append(session)
    for group in listed:
        group.sessions = held[group.agent.pk]
        if agent is not None:
            group.load = len(held[group.agent.pk])
    if agent is not None:
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


def customer_remark_names(*, account: OfficialAccount, openids: set[str] | None = None) -> dict[str, str]:
    """{openid: remark name} of the account's customers who have one (of `openids`,
    or all of them: an export names every customer it meets)."""
    customers = Customer.objects.filter(official_account=account).exclude(remark_name="")
    if openids is not None:
        if not openids:
            return {}
        customers = customers.filter(openid__in=openids)
    return dict(customers.values_list("openid", "remark_name"))


def customer_openids_named(*, account: OfficialAccount, name: str, limit: int = 2) -> list[str]:
    """The openids of customers whose remark name is `name` (ignoring case), at most
    `limit`: the history search finds a customer by the name people gave them."""
    name = " ".join(name.split())
    if not name:
        return []
    return list(
        Customer.objects.filter(official_account=account, remark_name__iexact=name)
        .order_by("-last_seen_at")
        .values_list("openid", flat=True)[:limit]
    )


def customer_known(*, account: OfficialAccount, openid: str) -> bool:
    """Whether kfadmin has seen a customer with this exact openid on the account."""
    return Customer.objects.filter(official_account=account, openid=openid).exists()


NOTES_SHOWN = 20


def customer_notes(*, customer: Customer, limit: int = NOTES_SHOWN) -> list[CustomerNote]:
    """The newest notes about the customer, newest first."""
    return list(CustomerNote.objects.filter(customer=customer).order_by("-created_at", "-id")[:limit])


SESSIONS_SHOWN = 10


def customer_sessions(*, customer: Customer, limit: int = SESSIONS_SHOWN) -> tuple[list[KfSession], int]:
    """The customer's sessions as kfadmin recorded them, newest first (at most
    `limit`), with their agents; and how many there are in all."""
    sessions = KfSession.objects.filter(customer=customer)
    listed = list(sessions.select_related("agent").order_by("-created_at", "-id")[:limit])
    total = len(listed) if len(listed) < limit else sessions.count()
    return listed, total


@dataclass(frozen=True)
class GrantState:
    """One running reply grant as the box shows it."""

    kind: str  # Grant.Kind: "message" (5 sends, 48 h) or "event" (3 sends, 60 s)
    remaining: int  # sends left of it after the ones already queued
    budget: int  # what it granted (5 or 3)
    expires_at: datetime
    seconds_left: int

    @property
    def is_event(self) -> bool:
        return self.kind == Grant.Kind.EVENT


@dataclass(frozen=True)
class WindowState:
    """The reply window as kfadmin believes WeChat sees it (wechat-kf-api.md §6.4):
    what the two grants allow now."""

    is_open: bool  # one more message would be accepted
    remaining: int  # sends left now over both grants, after the ones already queued
    budget: int  # what the grant the next send uses granted (5 or 3)
    expires_at: datetime | None  # when the last running grant ends: the window closes
    seconds_left: int
    pending: int
    typing_allowed: bool
    # Ended before the customer's last interaction would have let it (an unfollow, or
    # WeChat answering 45015), rather than running out its 48 hours or minute.
    closed_early: bool = False
    # The running grants, the one a send spends first first.
    grants: tuple[GrantState, ...] = ()



    @property
    def budget_used_up(self) -> bool:
        return self.seconds_left > 0 and self.remaining <= 0

    @property
    def usable_grants(self) -> list[GrantState]:
        """The grants with sends left, in the order sends use them."""
        return [g for g in self.grants if g.remaining > 0]

    @property
    def used_up_after(self) -> bool:
        """A grant with no sends left runs on after the usable ones end (a click's
        minute inside a used-up message grant): sends stop, the window stays "open"."""
        usable = self.usable_grants
        return bool(usable) and any(
            g.remaining <= 0 and g.expires_at > usable[-1].expires_at for g in self.grants
        )

    @property
    def grant(self) -> str | None:
        """Which grant the next send uses ("message" or "event"), if any."""
        usable = self.usable_grants
        return usable[0].kind if usable else None


_GRANT_BUDGET = {Grant.Kind.MESSAGE: MESSAGE_BUDGET, Grant.Kind.EVENT: EVENT_BUDGET}


def customer_window_state(
    *, customer: Customer | None, pending: int = 0, now: datetime | None = None
) -> WindowState:
    """The one reader of a customer's reply window: whether a send goes through now,
    how many are left and until when, from which grant, and whether typing may show;
    less `pending` sends already queued or being sent (messages are messaging's:
    `messaging.selectors.customer_window` counts them and calls this)."""
    now = now or timezone.now()
    if customer is None:
        return WindowState(False, 0, 0, None, 0, 0, False)
    # Queued messages will spend the grants in the order WeChat spends them.
    unspent = pending
    grants = []
    for grant in customer.grants(now):
        spent = min(unspent, grant.remaining)
        unspent -= spent
        grants.append(GrantState(
            kind=grant.kind,
            remaining=grant.remaining - spent,
            budget=_GRANT_BUDGET[grant.kind],
            expires_at=grant.expires_at,
            seconds_left=int((grant.expires_at - now).total_seconds()),
        ))
    live = bool(grants)
    expires_at = max(g.expires_at for g in grants) if live else None
    remaining = sum(g.remaining for g in grants)
    usable = [g for g in grants if g.remaining > 0]
    typing_allowed = (
        customer.sends_left(now) > 0
        and customer.last_interaction_at is not None
        and now - customer.last_interaction_at <= TYPING_INTERACTION_WINDOW
    )
    return WindowState(
        is_open=remaining > 0,
        remaining=remaining,
        budget=usable[0].budget if usable else (grants[0].budget if grants else 0),
        expires_at=expires_at,
        seconds_left=int((expires_at - now).total_seconds()) if expires_at is not None else 0,
        pending=pending,
        typing_allowed=typing_allowed,
        closed_early=not live and _window_closed_early(customer, now),
        grants=tuple(grants),
    )


def _window_closed_early(customer: Customer, now: datetime) -> bool:
    """A grant was ended (expires_at moved to the close) that would still run now."""
    for at, expires_at, length in (
        (customer.last_message_at, customer.window_expires_at, MESSAGE_WINDOW),
        (customer.last_event_at, customer.event_expires_at, EVENT_WINDOW),
    ):
        if at is not None and expires_at is not None and expires_at < at + length and at + length > now:
            return True
    return False


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


def auto_assign_get(*, account: OfficialAccount) -> AutoAssign:
    """The account's auto-assignment (off when never set; then unsaved)."""
    found = AutoAssign.objects.filter(official_account=account).first()
    return found if found is not None else AutoAssign(official_account=account)

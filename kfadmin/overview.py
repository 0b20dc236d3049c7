"""The overview (the home page): live numbers gathered from every app.

It reads agents and sync state (accounts), sessions (sessions_app) and today's
records (messaging), so it sits above the three apps, in the project package
(docs/architecture.md, "Layers"). Everything here reads kfadmin's own copy in the
database; nothing calls WeChat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone

from accounts.models import Agent, OfficialAccount, SyncState
from accounts.selectors import SyncRow, sync_rows
from messaging.models import MessageRecord
from sessions_app.models import KfSession

# Sessions the overview counts (never the closed history).
LIVE_STATES = (KfSession.State.WAITING, KfSession.State.OPEN)
# The live numbers on the overview depend on these jobs.
OVERVIEW_JOBS = (SyncState.Job.ONLINE, SyncState.Job.QUEUE, SyncState.Job.SESSIONS)


@dataclass(frozen=True)
class OverviewLoad:
    """An online agent's bar on the overview: the sessions WeChat says they accepted
    (`accepted_case`) against the capacity. Not the sessions board's `AgentLoad`,
    which counts the open sessions kfadmin knows."""

    agent: Agent
    capacity: int

    @property
    def percent(self) -> int:
        if self.capacity <= 0:
            return 100
        return min(100, round(100 * self.agent.accepted_case / self.capacity))

    @property
    def level(self) -> str:
        if self.agent.accepted_case >= self.capacity:
            return "full"
        if self.percent >= 80:
            return "high"
        return "ok"


@dataclass(frozen=True)
class Overview:
    now: datetime
    agents_total: int
    agents_online: int
    waiting: int
    longest_wait_since: datetime | None
    open_sessions: int
    messages_in_today: int
    messages_out_today: int
    loads: list[OverviewLoad] = field(default_factory=list)
    last_sync_at: datetime | None = None
    lagging: list[SyncRow] = field(default_factory=list)
    failing: list[SyncRow] = field(default_factory=list)

    @property
    def longest_wait(self) -> timedelta | None:
        if self.longest_wait_since is None:
            return None
        return max(self.now - self.longest_wait_since, timedelta(0))

    @property
    def never_synced(self) -> bool:
        return self.last_sync_at is None

    @property
    def last_sync_age(self) -> timedelta | None:
        if self.last_sync_at is None:
            return None
        return max(self.now - self.last_sync_at, timedelta(0))


def day_bounds(*, account: OfficialAccount, now: datetime) -> tuple[datetime, datetime]:
    """Start and end of `now`'s calendar day in the account's time zone."""
    zone = account.zone
    local = now.astimezone(zone)
    start = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
    end = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return start, end


def overview_get(*, account: OfficialAccount, now: datetime | None = None) -> Overview:
    now = now or timezone.now()
    agents = Agent.objects.listed().filter(official_account=account)
    counts = agents.aggregate(total=Count("id"), online=Count("id", filter=Q(online_status__gt=0)))
    # The load bars show name and load only: the timestamp columns (parsed in Python by
    # Django's psycopg 3 loader, a few microseconds each) are not fetched for every
    # online agent on every poll.
    online = list(
        agents.filter(online_status__gt=0)
        .defer("invite_expire_time", "last_listed_at", "last_online_at", "deleted_at", "created_at", "updated_at")
        .order_by("-accepted_case", "kf_account")
    )

    # Live sessions only: closed ones are the whole session history, which grows without
    # bound; with the state in the WHERE clause the (account, state, created_at) index
    # reads just the waiting and open rows.
    sessions = KfSession.objects.filter(official_account=account, state__in=LIVE_STATES).aggregate(
        oldest_waiting=Min("created_at", filter=Q(state=KfSession.State.WAITING)),
        waiting=Count("id", filter=Q(state=KfSession.State.WAITING)),
        open=Count("id", filter=Q(state=KfSession.State.OPEN)),
    )
    start, end = day_bounds(account=account, now=now)
    messages = MessageRecord.objects.filter(official_account=account, time__gte=start, time__lt=end).aggregate(
        inbound=Count("id", filter=Q(opercode__in=MessageRecord.OperCode.CUSTOMER)),
        outbound=Count("id", filter=Q(opercode__in=MessageRecord.OperCode.AGENT)),
    )
    rows = sync_rows(account=account, now=now)
    successes = [row.last_success_at for row in rows if row.last_success_at]
    return Overview(
        now=now,
        agents_total=counts["total"],
        agents_online=counts["online"],
        # WeChat's own count is the truth (its list is capped at 100); the local
        # rows only fill in while no queue sync has run.
        waiting=max(account.waiting_count, sessions["waiting"]),
        longest_wait_since=sessions["oldest_waiting"],
        open_sessions=sessions["open"],
        messages_in_today=messages["inbound"],
        messages_out_today=messages["outbound"],
        loads=[OverviewLoad(agent=agent, capacity=account.agent_capacity) for agent in online],
        last_sync_at=max(successes) if successes else None,
        lagging=[row for row in rows if row.job in OVERVIEW_JOBS and row.is_lagging],
        failing=[row for row in rows if row.has_error],
    )

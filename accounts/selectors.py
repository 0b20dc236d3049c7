"""Reads for the agents, users, audit log and sync status pages.

Everything here reads kfadmin's own copy in the database; nothing calls WeChat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Case, Max, Prefetch, Q, QuerySet, Value, When
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from accounts.models import (
    Agent,
    AlertPreference,
    AuditEvent,
    Membership,
    OfficialAccount,
    SyncState,
)

User = get_user_model()

# How often beat runs each job (settings.SYNC_*_SECONDS). Backfills run on demand.
SYNC_INTERVAL_SETTINGS: dict[str, str] = {
    SyncState.Job.AGENTS: "SYNC_AGENTS_SECONDS",
    SyncState.Job.ONLINE: "SYNC_ONLINE_SECONDS",
    SyncState.Job.QUEUE: "SYNC_QUEUE_SECONDS",
    SyncState.Job.SESSIONS: "SYNC_SESSIONS_SECONDS",
    SyncState.Job.HISTORY: "SYNC_HISTORY_SECONDS",
    SyncState.Job.LIBRARY: "SYNC_LIBRARY_SECONDS",
}
# A job lags when its last success is older than this many intervals (plus a minute
# of grace, so a run that is merely in progress is not flagged).
LAG_INTERVALS = 3
LAG_GRACE = timedelta(minutes=1)

# A "Sync now" press shows as queued until the job starts, or for at most this long.
QUEUED_FOR_AT_MOST = timedelta(minutes=2)
SYNC_RUN_ACTION = "sync_run"

AUDIT_PAGE_SIZE = 50

# What each audit action means, for people; actions not listed show as recorded.
AUDIT_ACTION_LABELS: dict[str, str | Promise] = {
    "agent_add": _("Add agent"),
    "agent_update": _("Rename agent"),
    "agent_delete": _("Delete agent"),
    "agent_avatar": _("Upload avatar"),
    "agent_invite": _("Invite WeChat user"),
    "user_create": _("Create user"),
    "user_role": _("Change role"),
    "user_activate": _("Reactivate user"),
    "user_deactivate": _("Deactivate user"),
    "user_password": _("Change password"),
    "sync_run": _("Start sync"),
    "alert_settings": _("Change alert settings"),
    "alert_thresholds": _("Change alert thresholds"),
    "session_assign": _("Assign session"),
    "auto_assign_update": _("Change auto-assignment"),
    "session_close": _("Close session"),
    "session_transfer": _("Transfer session"),
    "message_send": _("Send message"),
    "message_queue": _("Queue message"),
    "message_resend": _("Send message again"),
    "typing_send": _("Show typing"),
    "history_export": _("Export history"),
    "history_export_download": _("Download export"),
    "customer_update": _("Change customer's name or tags"),
    "customer_note_add": _("Add note about customer"),
    "customer_note_delete": _("Remove note about customer"),
    "quick_reply_create": _("Add quick reply"),
    "quick_reply_update": _("Change quick reply"),
    "quick_reply_delete": _("Delete quick reply"),
    "media_store": _("Keep a file to send"),
    "media_upload": _("Upload media to WeChat"),
    "media_fetch": _("Fetch a customer's media"),
    "login": _("Log in"),
    "logout": _("Log out"),
    "login_failed": _("Failed login"),
    "login_lockout": _("Login locked out"),
}


def audit_action_label(action: str) -> str:
    return str(AUDIT_ACTION_LABELS.get(action, action))


# --------------------------------------------------------------------------- agents


def agent_list(*, account: OfficialAccount) -> QuerySet[Agent]:
    """The account's kf accounts WeChat still lists."""
    return Agent.objects.listed().filter(official_account=account).order_by("kf_account")


AGENT_STATUSES = ("online", "offline", "unbound")


def agent_search(*, account: OfficialAccount, q: str = "", status: str = "") -> QuerySet[Agent]:
    """The listed agents whose kf account or nickname contains `q` (any case), in
    the agents table's order; `status`: only the online, the offline or the agents
    not bound to a WeChat user yet ("" for all)."""
    agents = agent_list(account=account)
    q = q.strip()
    if q:
        agents = agents.filter(Q(kf_account__icontains=q) | Q(kf_nick__icontains=q))
    if status == "online":
        agents = agents.filter(online_status__gt=0)
    elif status == "offline":
        agents = agents.filter(online_status=0)
    elif status == "unbound":
        agents = agents.filter(kf_wx="")
    return agents


def agent_suggestions(*, account: OfficialAccount, q: str, scope: str) -> QuerySet[Agent]:
    """The agents an agent field suggests for `q` (kf account or nickname containing it,
    any case), those whose kf account starts with it first. `scope`: "bound" (listed and
    bound to a WeChat user, online first: who can take customers and send), "listed",
    or "any" (every agent the account had, for history)."""
    agents: QuerySet[Agent]
    if scope == "any":
        agents = Agent.objects.filter(official_account=account)
    else:
        agents = agent_list(account=account)
        if scope == "bound":
            agents = agents.exclude(kf_wx="")
    q = q.strip()
    order: list = []
    if q:
        agents = agents.filter(Q(kf_account__icontains=q) | Q(kf_nick__icontains=q))
        agents = agents.annotate(
            starts=Case(When(kf_account__istartswith=q, then=Value(0)), default=Value(1))
        )
        order.append("starts")
    if scope == "bound":
        order.append("-online_status")
    return agents.order_by(*order, "kf_account")


def agent_invite_state(agent: Agent, *, now: datetime | None = None) -> str:
    """'bound', 'waiting', 'expired', 'rejected' or 'none'.

    WeChat reports `waiting` until someone asks again after the expiry, so a waiting
    invitation past its expiry time is shown as expired (and may be re-sent).
    """
    if agent.kf_wx:
        return "bound"
    status = agent.invite_status or ""
    if status == Agent.InviteStatus.WAITING:
        now = now or timezone.now()
        if agent.invite_expire_time is not None and agent.invite_expire_time <= now:
            return "expired"
        return "waiting"
    if status in (Agent.InviteStatus.REJECTED, Agent.InviteStatus.EXPIRED):
        return status
    return "none"


def accounts_with_pending_invitations(*, now: datetime | None = None) -> list[int]:
    """Ids of the active official accounts with an invitation still waiting for an
    answer (the agent is unbound, and the invitation has not expired)."""
    now = now or timezone.now()
    return list(
        Agent.objects.listed().filter(
            official_account__is_active=True,
            kf_wx="",
            invite_status=Agent.InviteStatus.WAITING,
        )
        .filter(Q(invite_expire_time__isnull=True) | Q(invite_expire_time__gt=now))
        .order_by("official_account_id")
        .values_list("official_account_id", flat=True)
        .distinct()
    )


def agent_can_invite(agent: Agent, *, now: datetime | None = None) -> bool:
    """An invitation can be sent while unbound and no invitation is pending."""
    return agent_invite_state(agent, now=now) in ("none", "expired", "rejected")


def agent_names(*, account: OfficialAccount, kf_accounts: set[str]) -> dict[str, str]:
    """kf account → the agent's nickname, for the given accounts kfadmin knows."""
    if not kf_accounts:
        return {}
    rows = Agent.objects.filter(official_account=account, kf_account__in=kf_accounts).values_list("kf_account", "kf_nick")
    return {kf_account: nick or kf_account for kf_account, nick in rows}


# --------------------------------------------------------------------------- sync status


@dataclass(frozen=True)
class SyncRow:
    job: str
    label: str
    state: SyncState | None
    interval: timedelta | None
    now: datetime
    # When someone last pressed "Sync now" for this job (from the audit log).
    requested_at: datetime | None = None

    @property
    def last_success_at(self) -> datetime | None:
        return self.state.last_success_at if self.state else None

    @property
    def lag(self) -> timedelta | None:
        if self.last_success_at is None:
            return None
        return max(self.now - self.last_success_at, timedelta(0))

    @property
    def is_running(self) -> bool:
        """A run holds the job and renewed its lease recently: it is alive."""
        return bool(self.state and self.state.running_since) and not self.is_stopped

    @property
    def is_stopped(self) -> bool:
        """A run holds the job but stopped renewing its lease (its worker died or it
        hangs): not running, whatever its last progress said; the next run takes over."""
        return self.state is not None and self.state.lease_expired(self.now)

    @property
    def is_queued(self) -> bool:
        """Requested by hand and not started since (a worker may still pick it up)."""
        if self.requested_at is None or self.now - self.requested_at > QUEUED_FOR_AT_MOST:
            return False
        started = self.state.last_started_at if self.state else None
        return started is None or started < self.requested_at

    @property
    def paused_until(self) -> datetime | None:
        """WeChat refused a call for quota (45009/45011): the job waits until then."""
        until = self.state.paused_until if self.state else None
        return until if until is not None and until > self.now else None

    @property
    def has_error(self) -> bool:
        """The latest run failed (an error newer than the last success)."""
        if not self.state or not self.state.last_error_at:
            return False
        return self.last_success_at is None or self.state.last_error_at > self.last_success_at

    @property
    def is_lagging(self) -> bool:
        if self.interval is None:
            return False
        lag = self.lag
        if lag is None:  # never succeeded
            return True
        return lag > self.interval * LAG_INTERVALS + LAG_GRACE

    @property
    def never_ran(self) -> bool:
        return self.state is None or (
            self.state.last_success_at is None and self.state.last_error_at is None
        )

    @property
    def progress(self) -> dict:
        return (self.state.progress or {}) if self.state else {}

    @property
    def progress_percent(self) -> int | None:
        """How far a history run got: its own `percent`, else windows done of total."""
        percent = _number(self.progress.get("percent"))
        if percent is None:
            done, total = _number(self.progress.get("windows_done")), _number(self.progress.get("windows_total"))
            if done is None or not total:
                return None
            percent = 100 * done / total
        return max(0, min(100, round(percent)))

    @property
    def progress_done(self) -> bool:
        return self.progress.get("state") == "done"

    @property
    def eta_minutes(self) -> int | None:
        seconds = _number(self.progress.get("eta_seconds"))
        if seconds is None or self.progress_done or not self.is_running:
            return None
        return max(1, math.ceil(seconds / 60))

    @property
    def eta(self) -> timedelta | None:
        """The running job's estimate, in whole minutes (an estimate, not a countdown)."""
        minutes = self.eta_minutes
        return None if minutes is None else timedelta(minutes=minutes)


def _number(value) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def sync_rows(*, account: OfficialAccount, now: datetime | None = None) -> list[SyncRow]:
    """One row per sync job, in the order of `SyncState.Job`, rows never run included."""
    now = now or timezone.now()
    states = {s.job: s for s in SyncState.objects.filter(official_account=account)}
    requested = dict(
        AuditEvent.objects.filter(
            official_account=account, action=SYNC_RUN_ACTION, at__gte=now - QUEUED_FOR_AT_MOST
        )
        .values("target")
        .annotate(last=Max("at"))
        .values_list("target", "last")
    )
    rows = []
    for job in SyncState.Job:
        setting = SYNC_INTERVAL_SETTINGS.get(job)
        seconds = getattr(settings, setting, None) if setting else None
        rows.append(
            SyncRow(
                job=job.value,
                label=str(job.label),
                state=states.get(job.value),
                interval=timedelta(seconds=seconds) if seconds else None,
                now=now,
                requested_at=requested.get(job.value),
            )
        )
    return rows


def sync_any_active(rows: list[SyncRow]) -> bool:
    """Whether the sync page should keep polling: something runs or waits to run."""
    return any(row.is_running or row.is_queued for row in rows)


# --------------------------------------------------------------------------- audit log


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _cursor_encode(event: AuditEvent) -> str:
    # Whole microseconds since the epoch: exact, unlike a float timestamp.
    return f"{(event.at - _EPOCH) // _MICROSECOND}-{event.pk}"


def _cursor_decode(cursor: str) -> tuple[datetime, int] | None:
    try:
        micros, pk = cursor.split("-", 1)
        return _EPOCH + timedelta(microseconds=int(micros)), int(pk)
    except (ValueError, OverflowError):
        return None


def audit_events(
    *,
    account: OfficialAccount,
    actor_id: int | None = None,
    action: str = "",
    day_from: date | None = None,
    day_to: date | None = None,
    cursor: str = "",
    limit: int = AUDIT_PAGE_SIZE,
) -> AuditPage:
    """The account's audit events, newest first, by keyset on (at, id).

    Days are calendar days in the account's time zone; `day_to` is inclusive.
    """
    events = AuditEvent.objects.filter(official_account=account).select_related("actor")
    if actor_id:
        events = events.filter(actor_id=actor_id)
    if action:
        events = events.filter(action=action)
    zone = account.zone
    if day_from:
        events = events.filter(at__gte=datetime.combine(day_from, datetime.min.time(), tzinfo=zone))
    if day_to:
        end = datetime.combine(day_to + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        events = events.filter(at__lt=end)
    position = _cursor_decode(cursor) if cursor else None
    if position:
        at, pk = position
        events = events.filter(Q(at__lt=at) | Q(at=at, pk__lt=pk))
    rows = list(events.order_by("-at", "-id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    for event in rows:
        event.action_label = audit_action_label(event.action)  # type: ignore[attr-defined]  # for the page, not a field
    return AuditPage(events=rows, next_cursor=_cursor_encode(rows[-1]) if more and rows else None)


def audit_actions(*, account: OfficialAccount) -> list[tuple[str, str]]:
    """(action, label) of every action in the account's audit log."""
    actions = (
        AuditEvent.objects.filter(official_account=account)
        .order_by("action")
        .values_list("action", flat=True)
        .distinct()
    )
    return [(action, audit_action_label(action)) for action in actions]


def audit_actors(*, account: OfficialAccount) -> list[tuple[int, str]]:
    """(user id, latest label) of everyone who appears in the account's audit log."""
    rows = (
        AuditEvent.objects.filter(official_account=account, actor__isnull=False)
        .values("actor_id", "actor__username")
        .annotate(last=Max("at"))
        .order_by("actor__username")
    )
    return [(row["actor_id"], row["actor__username"]) for row in rows]


# --------------------------------------------------------------------------- users


def supervised_accounts(*, user) -> QuerySet[OfficialAccount]:
    """The official accounts whose users `user` manages: all for superusers."""
    accounts = OfficialAccount.objects.filter(is_active=True)
    if user.is_superuser:
        return accounts.order_by("name", "id")
    return accounts.filter(
        memberships__user=user, memberships__role=Membership.Role.SUPERVISOR
    ).distinct().order_by("name", "id")


def managed_users(*, user, q: str = "") -> QuerySet:
    """Users with a role on an account `user` supervises, with those memberships;
    with `q`, those whose user name contains it (any case)."""
    accounts = supervised_accounts(user=user)
    memberships = Membership.objects.filter(official_account__in=accounts).select_related(
        "official_account", "agent"
    ).order_by("official_account__name", "official_account_id")
    users = User.objects.filter(memberships__official_account__in=accounts)
    if q.strip():
        users = users.filter(username__icontains=q.strip())
    return (
        users.distinct()
        .prefetch_related(Prefetch("memberships", queryset=memberships, to_attr="managed_memberships"))
        .order_by("-is_active", "username")
    )


def user_is_fully_managed(*, user, target) -> bool:
    """True when every role `target` holds is on an account `user` supervises, so
    deactivating the login takes nothing away from another account's supervisors."""
    if target.is_superuser and not user.is_superuser:
        return False
    supervised = set(supervised_accounts(user=user).values_list("pk", flat=True))
    held = set(Membership.objects.filter(user=target).values_list("official_account_id", flat=True))
    return held <= supervised


# --------------------------------------------------------------------------- login lockouts


def login_lockout_minutes_left(*, username: str, ip_address: str | None, now: datetime | None = None) -> int:
    """Whole minutes (rounded up, at least 1) until `username` may try again from
    `ip_address`: the lockout runs from the failure that caused it (settings.py)."""
    cool_off = get_cool_off() or timedelta(0)
    last = AccessAttempt.objects.filter(username=username, ip_address=ip_address).aggregate(
        last=Max("attempt_time")
    )["last"]
    if last is None:
        return max(1, math.ceil(cool_off.total_seconds() / 60))
    left = last + cool_off - (now or timezone.now())
    return max(1, math.ceil(left.total_seconds() / 60))


# --------------------------------------------------------------------------- alerts


def alert_preference(*, user) -> AlertPreference:
    """The person's alert choices; the defaults (a count in the tab title, no sound,
    no notification) until they save their own."""
    found = AlertPreference.objects.filter(user=user).first()
    return found if found is not None else AlertPreference(user=user)

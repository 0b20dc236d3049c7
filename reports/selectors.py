"""The reports' figures, read from the rollups (never from the archive).

docs/reports.md defines each figure. Ranges are calendar days in the account's time
zone, [first day 00:00, day after the last 00:00). Percentiles are nearest-rank (the
smallest value with at least p % of the values at or below it), so every median and
90th percentile is a duration that actually happened, in whole seconds: on PostgreSQL
`percentile_disc`, elsewhere the same rule in Python.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Max,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import Extract
from django.utils import timezone

from accounts.models import Agent, AgentPresence, OfficialAccount
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

# Queue waits, bucketed for the distribution chart: (upper bound in seconds, or None).
WAIT_BUCKETS: tuple[int | None, ...] = (30, 60, 120, 300, 600, 1800, None)


# ------------------------------------------------------------------ ranges


@dataclass(frozen=True)
class Period:
    """Calendar days [first, last] in a time zone."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time(), tzinfo=self.zone)

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1), self.zone)

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]


def period_default(*, account: OfficialAccount, now: datetime | None = None) -> Period:
    """The last 7 days, today included."""
    today = (now or timezone.now()).astimezone(account.zone).date()
    return Period(today - timedelta(days=6), today, account.zone)


# ------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class Stat:
    """Count, nearest-rank median and 90th percentile, and maximum, in seconds."""

    count: int = 0
    median: int | None = None
    p90: int | None = None
    longest: int | None = None


def nearest_rank(values: Sequence[float], fraction: float) -> int | None:
    """The smallest value with at least `fraction` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return int(ordered[rank - 1])


def stat_of(values: Sequence[float]) -> Stat:
    if not values:
        return Stat()
    return Stat(len(values), nearest_rank(values, 0.5), nearest_rank(values, 0.9), int(max(values)))


class PercentileDisc(Aggregate):
    """PostgreSQL's nearest-rank percentile (an ordered-set aggregate)."""

    function = "PERCENTILE_DISC"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=fraction, **extra)


def _elapsed(start: str, end: str) -> Extract | ExpressionWrapper:
    """Seconds from field `start` to field `end` (a timedelta on databases without
    interval arithmetic; `_as_seconds` reads both)."""
    between = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    return Extract(between, "epoch") if connection.vendor == "postgresql" else between


def _stats_by(qs: QuerySet, group: str | None, value: str, condition: Q | None = None) -> dict[str, Stat]:
    """Stat of the numeric annotation or field `value` (seconds), per `group` value
    ("" for all rows when group is None)."""
    qs = qs.filter(condition) if condition is not None else qs
    if connection.vendor == "postgresql":
        aggregates = {
            "n": Count("id"),
            "p50": PercentileDisc(F(value), 0.5),
            "p90": PercentileDisc(F(value), 0.9),
            "top": Max(value),
        }
        rows = qs.values(group).annotate(**aggregates).order_by() if group else [qs.aggregate(**aggregates)]
        return {
            (row[group] if group else ""): Stat(row["n"], _int(row["p50"]), _int(row["p90"]), _int(row["top"]))
            for row in rows
            if row["n"]
        }
    grouped: dict[str, list[float]] = defaultdict(list)
    for key, seconds in qs.values_list(group or "official_account_id", value):
        grouped[key if group else ""].append(_as_seconds(seconds))
    return {key: stat_of(values) for key, values in grouped.items()}


def _as_seconds(value) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _int(value) -> int | None:
    if value is None:
        return None
    return int(_as_seconds(value))


# ------------------------------------------------------------------ the report


@dataclass
class AgentFigures:
    worker: str
    name: str
    agent_id: int | None = None
    accepted: int = 0
    closed: int = 0
    transferred: int = 0
    customers: int = 0
    sent: int = 0
    first_response: Stat = field(default_factory=Stat)
    reply: Stat = field(default_factory=Stat)
    duration: Stat = field(default_factory=Stat)
    unanswered: int = 0


@dataclass
class TeamFigures:
    messages_in: int = 0
    messages_out: int = 0
    accepted: int = 0
    customers: int = 0
    unanswered: int = 0
    first_response: Stat = field(default_factory=Stat)
    reply: Stat = field(default_factory=Stat)
    duration: Stat = field(default_factory=Stat)
    # (local day, in, out) for every day of the period
    daily: list[tuple[date, int, int]] = field(default_factory=list)
    # (UTC hour, in, out) of the hours with messages, and the period they cover: the
    # hourly series is built only when read (a year has 8,760 hours; the page shows
    # them only for a week or less, the hourly CSV always)
    by_hour: dict[datetime, tuple[int, int]] = field(default_factory=dict)
    period: Period | None = None
    # customer messages by weekday (0 = Monday) and local hour
    heat: list[list[int]] = field(default_factory=lambda: [[0] * 24 for _ in range(7)])
    queue: Stat = field(default_factory=Stat)
    queue_over: int = 0
    queue_left: int = 0
    queue_waiting: int = 0
    # (upper bound seconds or None, served waits in the bucket)
    wait_buckets: list[tuple[int | None, int]] = field(default_factory=list)

    @property
    def hourly(self) -> list[tuple[datetime, int, int]]:
        """(local hour start, in, out) for every hour of the period."""
        if self.period is None:
            return []
        zone, end, step = self.period.zone, self.period.end, timedelta(hours=1)
        hour = datetime.fromtimestamp(math.floor(self.period.start.timestamp() / 3600) * 3600, tz=UTC)
        series = []
        while hour < end:
            n_in, n_out = self.by_hour.get(hour, (0, 0))
            series.append((hour.astimezone(zone), n_in, n_out))
            hour += step
        return series

    @property
    def queue_over_share(self) -> float | None:
        return self.queue_over / self.queue.count if self.queue.count else None

    @property
    def heat_max(self) -> int:
        return max((max(row) for row in self.heat), default=0)


@dataclass
class Report:
    period: Period
    agents: list[AgentFigures]
    team: TeamFigures
    threshold: int


def report_get(*, account: OfficialAccount, period: Period, detail: bool = True) -> Report:
    """Every figure of the reports page for one period; without `detail`, only what
    the comparison with it shows (no series, heat map or wait distribution)."""
    start, end = period.start, period.end
    agents: dict[str, AgentFigures] = {}

    def row(worker: str) -> AgentFigures:
        if worker not in agents:
            agents[worker] = AgentFigures(worker=worker, name=worker)
        return agents[worker]

    sessions = SessionFact.objects.filter(official_account=account, started_at__gte=start, started_at__lt=end)
    answered_customers = Count("openid", distinct=True, filter=Q(messages_out__gt=0))
    unanswered = Count("id", filter=Q(ended_at__isnull=False, asked_at__isnull=False, first_reply_at__isnull=True))
    for started in sessions.values("worker").annotate(n=Count("id"), c=answered_customers, u=unanswered).order_by():
        figures = row(started["worker"])
        figures.accepted, figures.customers, figures.unanswered = started["n"], started["c"], started["u"]
    held = sessions.filter(end_code__in=[SessionFact.End.CLOSED, SessionFact.End.TRANSFERRED]).annotate(
        held=_elapsed("started_at", "ended_at")
    )
    for worker, stat in _stats_by(held, "worker", "held").items():
        row(worker).duration = stat
    ended = SessionFact.objects.filter(official_account=account, ended_at__gte=start, ended_at__lt=end)
    for done in ended.values("worker").annotate(
        closed=Count("id", filter=Q(end_code=SessionFact.End.CLOSED)),
        transferred=Count("id", filter=Q(end_code=SessionFact.End.TRANSFERRED)),
    ).order_by():
        figures = row(done["worker"])
        figures.closed, figures.transferred = done["closed"], done["transferred"]
    responses = ResponseFact.objects.filter(official_account=account, asked_at__gte=start, asked_at__lt=end)
    for worker, stat in _stats_by(responses, "worker", "seconds", Q(first=True)).items():
        row(worker).first_response = stat
    for worker, stat in _stats_by(responses, "worker", "seconds", Q(first=False)).items():
        row(worker).reply = stat
    for worker, out in _sent_by_worker(account, start, end).items():
        if out:
            row(worker).sent = out

    team = TeamFigures()
    team.accepted = sum(a.accepted for a in agents.values())
    team.unanswered = sum(a.unanswered for a in agents.values())
    team.customers = sessions.filter(messages_out__gt=0).values("openid").distinct().count()
    team.first_response = _stats_by(responses, None, "seconds", Q(first=True)).get("", Stat())
    team.reply = _stats_by(responses, None, "seconds", Q(first=False)).get("", Stat())
    team.duration = _stats_by(held, None, "held").get("", Stat())
    hours = TeamHour.objects.filter(official_account=account, hour__gte=start, hour__lt=end)
    if detail:
        _volume(team, hours, period)
    else:
        totals = hours.aggregate(i=Sum("messages_in"), o=Sum("messages_out"))
        team.messages_in, team.messages_out = totals["i"] or 0, totals["o"] or 0
    _queue(team, account, period, detail=detail)

    listed = {a.kf_account: a for a in Agent.objects.filter(official_account=account)}
    for kf_account, agent in listed.items():
        if agent.deleted_at is None or kf_account in agents:
            figures = row(kf_account)
            figures.name, figures.agent_id = agent.display_name, agent.pk
    ordered = sorted(agents.values(), key=lambda a: (-a.accepted, -a.sent, a.name))
    return Report(period=period, agents=ordered, team=team, threshold=account.alert_queue_wait_seconds)


def _sent_by_worker(account: OfficialAccount, start: datetime, end: datetime) -> dict[str, int]:
    """Agents' messages in [start, end), per worker: the whole UTC days inside it from
    MessageDay, the hours before the first and after the last of them from MessageHour
    (together exactly the hours of MessageHour in [start, end))."""
    first_day, last_day = _midnight_after(start), _midnight_before(end)
    parts: list[QuerySet] = []
    if first_day < last_day:
        parts.append(MessageDay.objects.filter(official_account=account, day__gte=first_day, day__lt=last_day))
        edges = Q(hour__gte=start, hour__lt=first_day) | Q(hour__gte=last_day, hour__lt=end)
    else:
        edges = Q(hour__gte=start, hour__lt=end)
    parts.append(MessageHour.objects.filter(edges, official_account=account))
    sent: dict[str, int] = defaultdict(int)
    for qs in parts:
        for worker, out in qs.exclude(worker="").values_list("worker").annotate(out=Sum("messages_out")).order_by():
            sent[worker] += out or 0
    return sent


def _midnight_before(at: datetime) -> datetime:
    """The UTC midnight at or before `at`."""
    return datetime.fromtimestamp(math.floor(at.timestamp() / 86400) * 86400, tz=UTC)


def _midnight_after(at: datetime) -> datetime:
    """The UTC midnight at or after `at`."""
    return datetime.fromtimestamp(math.ceil(at.timestamp() / 86400) * 86400, tz=UTC)


def _volume(team: TeamFigures, hours: QuerySet[TeamHour], period: Period) -> None:
    zone = period.zone
    by_hour: dict[datetime, tuple[int, int]] = {
        hour: (n_in, n_out) for hour, n_in, n_out in hours.values_list("hour", "messages_in", "messages_out")
    }
    daily = {day: [0, 0] for day in period.dates()}
    for at, (n_in, n_out) in by_hour.items():
        local = at.astimezone(zone)
        team.messages_in += n_in
        team.messages_out += n_out
        if local.date() in daily:
            daily[local.date()][0] += n_in
            daily[local.date()][1] += n_out
        team.heat[local.weekday()][local.hour] += n_in
    team.daily = [(day, counts[0], counts[1]) for day, counts in daily.items()]
    team.by_hour, team.period = by_hour, period


def _queue(team: TeamFigures, account: OfficialAccount, period: Period, *, detail: bool) -> None:
    stays = QueueFact.objects.filter(
        official_account=account, queued_at__gte=period.start, queued_at__lt=period.end
    )
    served = stays.filter(outcome=QueueFact.Outcome.SERVED).alias(
        wait=ExpressionWrapper(F("ended_at") - F("queued_at"), output_field=DurationField())
    )
    team.queue = _stats_by(served.annotate(waited=_elapsed("queued_at", "ended_at")), None, "waited").get(
        "", Stat()
    )
    threshold = timedelta(seconds=account.alert_queue_wait_seconds)
    buckets = {"over": Count("id", filter=Q(wait__gt=threshold))}
    lower = timedelta(0)
    for n, upper in enumerate(WAIT_BUCKETS if detail else ()):
        condition = Q(wait__gte=lower) if n else Q()
        if upper is not None:
            condition &= Q(wait__lt=timedelta(seconds=upper))
            lower = timedelta(seconds=upper)
        buckets[f"b{n}"] = Count("id", filter=condition)
    counts = served.aggregate(**buckets)
    team.queue_over = counts["over"]
    team.wait_buckets = [(upper, counts[f"b{n}"]) for n, upper in enumerate(WAIT_BUCKETS) if detail]
    rest = stays.aggregate(
        left=Count("id", filter=Q(outcome=QueueFact.Outcome.LEFT)),
        waiting=Count("id", filter=Q(outcome=QueueFact.Outcome.WAITING)),
    )
    team.queue_left, team.queue_waiting = rest["left"], rest["waiting"]


# ------------------------------------------------------------------ freshness


@dataclass(frozen=True)
class Pending:
    """What stored records the rollups have not counted yet (the sync queue's
    catch-up derives them, normally within seconds)."""

    customers: int
    hours: int

    @property
    def any(self) -> bool:
        return bool(self.customers or self.hours)


def rollups_pending(*, account: OfficialAccount) -> Pending:
    """The customers and hours still waiting for the rollups' catch-up."""
    customers = PendingCustomer.objects.filter(official_account=account).values("openid").distinct().count()
    hours = PendingHour.objects.filter(official_account=account).values("hour").distinct().count()
    return Pending(customers=customers, hours=hours)


# ------------------------------------------------------------------ presence


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    online: bool | None  # None: nothing known yet
    accepted: int

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


@dataclass
class Presence:
    agent: Agent
    period: Period
    segments: list[Segment]
    online_seconds: int
    sessions: list[SessionFact]
    sessions_total: int
    until: datetime  # the period's end, or now while it runs


PRESENCE_SESSIONS_SHOWN = 200


def presence_get(*, agent: Agent, period: Period, now: datetime | None = None) -> Presence:
    """The agent's online and offline stretches over the period (from the presence
    history the online sync writes on every change), and the sessions they held."""
    now = now or timezone.now()
    start, end = period.start, min(period.end, now)
    before = AgentPresence.objects.filter(agent=agent, at__lt=start).order_by("-at").first()
    changes = list(AgentPresence.objects.filter(agent=agent, at__gte=start, at__lt=end).order_by("at", "id"))
    segments: list[Segment] = []
    state: tuple[bool | None, int] = (before.online_status > 0, before.accepted_case) if before else (None, 0)
    cursor = start
    for change in changes:
        if change.at > cursor:
            segments.append(Segment(cursor, change.at, state[0], state[1]))
        cursor = max(cursor, change.at)
        state = (change.online_status > 0, change.accepted_case)
    if end > cursor:
        segments.append(Segment(cursor, end, state[0], state[1]))
    merged = _merge(segments)
    held = SessionFact.objects.filter(
        official_account_id=agent.official_account_id, worker=agent.kf_account, started_at__lt=period.end
    ).filter(Q(ended_at__isnull=True) | Q(ended_at__gt=period.start))
    return Presence(
        agent=agent,
        period=period,
        segments=merged,
        online_seconds=sum(s.seconds for s in merged if s.online),
        sessions=list(held.order_by("started_at", "id")[:PRESENCE_SESSIONS_SHOWN]),
        sessions_total=held.count(),
        until=end,
    )


def _merge(segments: Iterable[Segment]) -> list[Segment]:
    """Join neighbours with the same state (online and load)."""
    merged: list[Segment] = []
    for segment in segments:
        last = merged[-1] if merged else None
        if last and last.online == segment.online and last.accepted == segment.accepted and last.end == segment.start:
            merged[-1] = Segment(last.start, segment.end, last.online, last.accepted)
        else:
            merged.append(segment)
    return merged

"""The reports' tables as rows of plain values: the CSV downloads (and nothing else)
read them, so a download holds exactly what the page shows."""

from __future__ import annotations

from collections.abc import Iterator

from reports.selectors import Presence, Report, Stat

TABLES = ("agents", "daily", "hourly", "heatmap", "queue")


def _stat(stat: Stat) -> list:
    return [stat.count, _blank(stat.median), _blank(stat.p90)]


def _blank(value: int | None) -> int | str:
    return "" if value is None else value


def report_table(report: Report, name: str) -> tuple[list[str], Iterator[list]]:
    """(columns, rows) of one of the report's tables; durations in seconds."""
    team = report.team
    if name == "agents":
        columns = [
            "agent", "kf_account", "sessions_accepted", "sessions_closed", "sessions_transferred",
            "customers_served", "messages_sent", "first_responses", "first_response_median_s",
            "first_response_p90_s", "replies", "reply_median_s", "reply_p90_s", "sessions_timed",
            "session_duration_median_s", "session_duration_p90_s", "sessions_unanswered",
        ]
        rows = (
            [a.name, a.worker, a.accepted, a.closed, a.transferred, a.customers, a.sent,
             *_stat(a.first_response), *_stat(a.reply), *_stat(a.duration), a.unanswered]
            for a in report.agents
        )
        return columns, rows
    if name == "daily":
        return ["day", "messages_from_customers", "messages_from_agents"], (
            [day.isoformat(), i, o] for day, i, o in team.daily
        )
    if name == "hourly":
        return ["hour", "messages_from_customers", "messages_from_agents"], (
            [at.isoformat(), i, o] for at, i, o in team.hourly
        )
    if name == "heatmap":
        weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        return ["weekday", *[f"{h:02d}" for h in range(24)]], (
            [weekdays[d], *team.heat[d]] for d in range(7)
        )
    if name == "queue":
        figures: list[list] = [
            ["served", team.queue.count], ["wait_median_s", _blank(team.queue.median)],
            ["wait_p90_s", _blank(team.queue.p90)], ["wait_longest_s", _blank(team.queue.longest)],
            ["threshold_s", report.threshold], ["over_threshold", team.queue_over],
            ["left_unserved", team.queue_left], ["still_waiting", team.queue_waiting],
        ]
        lower = 0
        for upper, value in team.wait_buckets:
            figures.append([f"wait_{lower}s_to_{upper}s" if upper else f"wait_{lower}s_or_more", value])
            lower = upper or lower
        return ["figure", "value"], iter(figures)
    raise KeyError(name)


def presence_table(presence: Presence) -> tuple[list[str], Iterator[list]]:
    zone = presence.period.zone
    return ["from", "until", "state", "sessions_held", "seconds"], (
        [
            s.start.astimezone(zone).isoformat(), s.end.astimezone(zone).isoformat(),
            "unknown" if s.online is None else ("online" if s.online else "offline"), s.accepted, s.seconds,
        ]
        for s in presence.segments
    )



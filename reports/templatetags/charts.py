"""The reports' charts: SVG drawn on the server.

No script, no CDN, no build step, and nothing the strict CSP refuses: shapes carry
classes (static/css/app.css colours them, also for print) and SVG presentation
attributes, never a style attribute. Nothing is told by colour alone: the two series
differ by pattern (solid, hatched) and say so in a legend, every bar and cell has a
<title> with its figure, cells print their number, and each chart sits beside a
table of the same figures. The viewBox scales to the page's width, so a phone gets
the whole chart. docs/reports.md says why SVG rather than a charting library.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache
from itertools import count

from django import template
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from accounts.templatetags.durations import duration
from reports.selectors import Presence, TeamFigures

register = template.Library()

_ids = count(1)
WIDTH = 720


def _svg(body: str, *, height: int, label: str, width: int = WIDTH) -> SafeString:
    n = next(_ids)
    return mark_safe(  # noqa: S308 - every text in `body` and `label` went through escape()
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-{n}" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-{n}">{escape(label)}</title>{_patterns(n)}{body.replace("PAT-", f"p{n}-")}</svg>'
    )


def _patterns(n: int) -> str:
    """The hatched fill of the second series and of online time."""
    return (
        f'<defs><pattern id="p{n}-hatch" patternUnits="userSpaceOnUse" width="6" height="6" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-ground"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" class="hatch-line" stroke-width="3"/></pattern></defs>'
    )


def _legend(x: int, y: int, items: Sequence[tuple[str, str]]) -> str:
    parts = []
    for label, fill in items:
        parts.append(
            f'<rect x="{x}" y="{y - 10}" width="14" height="12" class="{fill}" {_fill(fill)}/>'
            f'<text x="{x + 20}" y="{y}" class="chart-text">{escape(label)}</text>'
        )
        x += 30 + 8 * len(label)
    return "".join(parts)


def _fill(kind: str) -> str:
    return 'fill="url(#PAT-hatch)"' if kind == "bar-out" else ""


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


@register.simple_tag
def volume_chart(team: TeamFigures, by: str = "day") -> SafeString:
    """Customer messages (solid) and agent messages (hatched) per day or per local hour."""
    rows: list[tuple[date | datetime, int, int]]
    if by == "hour":
        rows = [(at, i, o) for at, i, o in team.hourly]
        name = _("Messages per hour")
    else:
        rows = [(day, i, o) for day, i, o in team.daily]
        name = _("Messages per day")
    height, top, left, bottom = 260, 30, 44, 40
    plot_w, plot_h = WIDTH - left - 10, height - top - bottom
    peak = _nice_max(max([max(i, o) for _, i, o in rows] or [0]))
    slot = plot_w / max(len(rows), 1)
    bar = max(slot / 2 - 1, 0.5)
    every = max(1, round(len(rows) / 12))
    parts = [_legend(left, 16, [(_("from customers"), "bar-in"), (_("from agents"), "bar-out")])]
    for tick in (0, peak // 2, peak):
        y = top + plot_h - plot_h * tick / peak
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" class="chart-text" text-anchor="end">{tick}</text>'
        )
    for n, (at, n_in, n_out) in enumerate(rows):
        x = left + n * slot
        label = _label(at, by)
        for k, (value, kind, what) in enumerate(((n_in, "bar-in", _("from customers")), (n_out, "bar-out", _("from agents")))):
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{x + k * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'class="{kind}" {_fill(kind)}><title>{escape(label)} · {escape(what)}: {value}</title></rect>'
            )
        if n % every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - bottom + 16}" class="chart-text" '
                f'text-anchor="middle">{escape(_short(at, by))}</text>'
            )
    parts.append(f'<line x1="{left}" x2="{WIDTH - 10}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>')
    return _svg("".join(parts), height=height, label=name)


def _label(at: date | datetime, by: str) -> str:
    if by == "hour" and isinstance(at, datetime):
        return date_format(at, "SHORT_DATETIME_FORMAT")
    return date_format(at, "SHORT_DATE_FORMAT")


def _short(at: date | datetime, by: str) -> str:
    if by == "hour" and isinstance(at, datetime):
        return f"{at.month}/{at.day} {at.hour:02d}h" if at.hour == 0 else f"{at.hour:02d}h"
    return f"{at.month}/{at.day}"


def weekday_names() -> list[str]:
    return [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")]


@register.simple_tag
def heat_chart(team: TeamFigures) -> SafeString:
    """Customer messages by weekday and local hour: shade and the number in each cell."""
    left, top, cell_w, cell_h = 44, 24, 28, 26
    width, height = left + 24 * cell_w + 4, top + 7 * cell_h + 4
    peak = team.heat_max or 1
    parts = []
    for hour in range(24):
        parts.append(
            f'<text x="{left + hour * cell_w + cell_w / 2}" y="{top - 8}" class="chart-text small" '
            f'text-anchor="middle">{hour:02d}</text>'
        )
    for day, name in enumerate(weekday_names()):
        y = top + day * cell_h
        parts.append(f'<text x="{left - 6}" y="{y + cell_h / 2 + 4}" class="chart-text" text-anchor="end">{escape(name)}</text>')
        for hour in range(24):
            value = team.heat[day][hour]
            level = 0 if value == 0 else 1 + min(3, int(4 * value / (peak + 1)))
            x = left + hour * cell_w
            tip = _("%(day)s %(hour)02d:00 · %(count)s messages from customers") % {"day": name, "hour": hour, "count": value}
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" class="heat-{level}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            if value:
                parts.append(
                    f'<text x="{x + (cell_w - 2) / 2}" y="{y + cell_h / 2 + 3}" class="chart-text small heat-text-{level}" '
                    f'text-anchor="middle">{value if value < 1000 else f"{value // 1000}k"}</text>'
                )
    return _svg("".join(parts), height=height, width=width, label=_("Customer messages by weekday and hour"))


def bucket_label(upper: int | None, lower: int | None) -> str:
    if upper is None:
        return _("%(duration)s or more") % {"duration": duration(lower or 0)}
    return _("under %(duration)s") % {"duration": duration(upper)}


@register.simple_tag
def wait_chart(team: TeamFigures) -> SafeString:
    """How many served customers waited how long (horizontal bars with their counts)."""
    rows = []
    lower = None
    for upper, value in team.wait_buckets:
        rows.append((bucket_label(upper, lower), value))
        lower = upper
    return _hbars(rows, label=_("Queue waits"), unit=_("customers"))


@register.simple_tag
def agents_chart(agents: Sequence) -> SafeString:
    """Sessions accepted per agent, the 15 busiest."""
    rows = [(a.name, a.accepted) for a in agents if a.accepted][:15]
    return _hbars(rows, label=_("Sessions accepted per agent"), unit=_("sessions"))


def _hbars(rows: Sequence[tuple[str, int]], *, label: str, unit: str) -> SafeString:
    left, top, row_h = 150, 8, 26
    height = top + max(len(rows), 1) * row_h + 8
    plot_w = WIDTH - left - 70
    peak = max([value for _, value in rows] or [0]) or 1
    parts = []
    for n, (name, value) in enumerate(rows):
        y = top + n * row_h
        w = plot_w * value / peak
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" class="chart-text" text-anchor="end">{escape(name[:22])}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" class="bar-in">'
            f"<title>{escape(name)}: {value} {escape(unit)}</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + 16}" class="chart-text">{value}</text>'
        )
    if not rows:
        parts.append(f'<text x="{left}" y="{top + 16}" class="chart-text">{escape(_("Nothing in this period."))}</text>')
    return _svg("".join(parts), height=height, label=label)


@register.simple_tag
def presence_chart(presence: Presence) -> SafeString:
    """Online (hatched, labelled) and offline stretches, and the sessions held below."""
    left, top, band = 10, 30, 34
    plot_w = WIDTH - 2 * left
    start, end = presence.period.start, presence.period.end
    until = min(end, presence.until)
    span = (end - start).total_seconds() or 1

    def x(at: datetime) -> float:
        return left + plot_w * max(0.0, min(1.0, (at - start).total_seconds() / span))

    def when(at: datetime) -> str:
        # date_format() does not convert: the stored times are UTC, the page's the account's.
        return date_format(at.astimezone(presence.period.zone), "SHORT_DATETIME_FORMAT")

    parts = [_legend(left, 16, [(_("online"), "bar-out"), (_("offline"), "presence-off")])]
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{band}" class="presence-off"/>')
    for s in presence.segments:
        if s.online is None:
            kind, what = "presence-unknown", _("not known")
        elif s.online:
            kind, what = "bar-out", _("online")
        else:
            continue
        tip = f"{when(s.start)} – {when(s.end)} · {what}"
        parts.append(
            f'<rect x="{x(s.start):.1f}" y="{top}" width="{max(x(s.end) - x(s.start), 0.5):.1f}" height="{band}" '
            f'class="{kind}" {_fill(kind)}><title>{escape(tip)}</title></rect>'
        )
    lanes = 0
    lane_end: list[datetime] = []
    rows_top = top + band + 10
    for fact in presence.sessions:
        finish = fact.ended_at or until
        lane = next((n for n, e in enumerate(lane_end) if e <= fact.started_at), None)
        if lane is None:
            lane_end.append(finish)
            lane = len(lane_end) - 1
        else:
            lane_end[lane] = finish
        lanes = max(lanes, lane + 1)
        tip = f"{fact.openid} · {when(fact.started_at)} · {duration(finish - fact.started_at)}"
        parts.append(
            f'<rect x="{x(fact.started_at):.1f}" y="{rows_top + lane * 8}" width="{max(x(finish) - x(fact.started_at), 1.5):.1f}" '
            f'height="6" class="session-bar"><title>{escape(tip)}</title></rect>'
        )
    axis_y = rows_top + max(lanes, 1) * 8 + 6
    days = presence.period.dates()
    every = max(1, round(len(days) / 8))
    for n, day in enumerate(days):
        at = datetime.combine(day, datetime.min.time(), tzinfo=presence.period.zone)
        parts.append(f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{top}" y2="{axis_y}" class="grid"/>')
        if n % every == 0:
            parts.append(f'<text x="{x(at) + 3:.1f}" y="{axis_y + 14}" class="chart-text">{day.month}/{day.day}</text>')
    return _svg("".join(parts), height=axis_y + 22, label=_("Online and offline, and sessions held"))


@register.filter
def change(now: int | float | None, before: int | float | None) -> str:
    """The change from the previous period, signed ("+3", "−2", "±0"); blank when
    either side has no figure."""
    if now is None or before is None:
        return ""
    diff = now - before
    if diff == 0:
        return "±0"
    return f"+{diff:g}" if diff > 0 else f"−{-diff:g}"


@register.filter
def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.0f}%"


@register.simple_tag
def weekday_name(index: int) -> str:
    return weekday_names()[index]


@register.simple_tag
def wait_bucket(upper: int | None, index: int, buckets: Sequence[tuple[int | None, int]]) -> str:
    return bucket_label(upper, buckets[index - 1][0] if index else None)


@register.filter
def get_item(mapping: dict, key: str):
    return mapping.get(key)


@lru_cache(maxsize=4096)
def _said(seconds: int, language: str | None) -> str:
    return duration(seconds)


def said(seconds: int) -> str:
    """`|duration`'s words, remembered: a table of 200 agents says a thousand
    durations, and `|duration` shows whole minutes from a minute on."""
    seconds = max(0, int(seconds))
    return _said(seconds if seconds < 60 else seconds // 60 * 60, get_language())


@register.simple_tag
def stat_cell(stat, before=None) -> SafeString:
    """A median with its 90th percentile (and the previous period's median): one
    tag rather than an include, since the agents' table has hundreds of them."""
    if not stat.count:
        return mark_safe('<span class="muted">—</span>')  # noqa: S308 - a constant
    was = ""
    if before is not None and before.count:
        was = " · " + _("was %(median)s") % {"median": said(before.median)}
    return format_html(
        '<span class="fig-value">{}</span> <span class="muted small-text">· p90 {}{}</span>',
        said(stat.median), said(stat.p90), was,
    )


@register.simple_tag
def agent_rows(agents: Sequence, before: dict, query: str) -> SafeString:
    """The agents' table body: one tag rather than ~15 template nodes per row (the
    table has a row per agent, 200 and more)."""
    timeline = _("Timeline")
    rows = []
    for a in agents:
        b = before.get(a.worker)
        link = (
            format_html('<a href="{}?{}">{}</a>', reverse("reports:presence", args=[a.agent_id]), query, timeline)
            if a.agent_id
            else ""
        )
        rows.append(
            format_html(
                '<tr>\n  <th scope="row" title="{}">{}</th>\n'
                '  <td class="num">{} <span class="muted small-text">{}</span></td>\n'
                '  <td class="num">{}</td>\n  <td class="num">{}</td>\n  <td class="num">{}</td>\n'
                '  <td class="num">{} <span class="muted small-text">{}</span></td>\n'
                "  <td>{}</td>\n  <td>{}</td>\n  <td>{}</td>\n"
                '  <td class="num">{}</td>\n  <td class="no-print">{}</td>\n</tr>\n',
                a.worker, a.name,
                a.accepted, change(a.accepted, b.accepted if b else None),
                a.closed, a.transferred, a.customers,
                a.sent, change(a.sent, b.sent if b else None),
                stat_cell(a.first_response, b.first_response if b else None),
                stat_cell(a.reply), stat_cell(a.duration),
                a.unanswered, link,
            )
        )
    return mark_safe("".join(rows))  # noqa: S308 - every part escaped by format_html

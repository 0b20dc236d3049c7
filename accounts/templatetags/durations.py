"""Durations in words, one way on every page (healthchecks' `hc_duration` is the model).

    {{ session.waited|duration }}            "45 seconds", "12 minutes", "1 hour, 5 minutes"
    {{ row.last_success_at|duration_since:now }}

Under a minute the seconds are counted; from a minute on, the two largest units
(Django's `timesince` words and translations, so "12 minutes" reads "12 分钟").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import avoid_wrapping, format_html
from django.utils.timesince import timesince
from django.utils.translation import ngettext

register = template.Library()


@register.filter
def duration(value: timedelta | int | float | None) -> str:
    """A timedelta (or a number of seconds) in words; a negative one counts as zero."""
    if value is None or value == "":
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(0, int(seconds))
    if seconds < 60:
        return avoid_wrapping(ngettext("%(num)d second", "%(num)d seconds", seconds) % {"num": seconds})
    reference = datetime(2000, 1, 1)
    return timesince(reference - timedelta(seconds=seconds), reference)


@register.filter
def duration_since(start: datetime | None, now: datetime) -> str:
    """How long from `start` until `now`, in words."""
    if start is None:
        return ""
    return duration(now - start)


@register.simple_tag
def elapsed(value: datetime | timedelta | None, now: datetime | None = None) -> str:
    """`duration_since` (from a start and `now`) or `duration` (of a timedelta) as a
    `<time>` that static/js/live-times.js advances in the browser, so a region left
    alone by an unchanged poll still counts the minutes:

        {% elapsed s.created_at now as waited %}{% blocktranslate with duration=waited %}waiting {{ duration }}{% endblocktranslate %}
    """
    if value is None or value == "":
        return ""
    if isinstance(value, timedelta):
        seconds = max(0, int(value.total_seconds()))
        stamp = f"PT{seconds}S"  # an HTML duration
    else:
        seconds = max(0, int(((now or timezone.now()) - value).total_seconds()))
        stamp = value.isoformat()
    return format_html('<time datetime="{}" data-elapsed data-seconds="{}">{}</time>', stamp, seconds, duration(seconds))

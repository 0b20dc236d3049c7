"""Durations in words, one way on every page (healthchecks' `hc_duration` is the model).

    {{ session.waited|duration }}            "45 seconds", "12 minutes", "1 hour, 5 minutes"
    {{ row.last_success_at|duration_since:now }}

Under a minute the seconds are counted; from a minute on, the two largest units
(Django's `timesince` words and translations, so "12 minutes" reads "12 分钟").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils.html import avoid_wrapping
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

"""`{{ value|duration }}`: one way to say how long, on every page and in both languages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import translation

from accounts.templatetags.durations import duration, duration_since

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (timedelta(seconds=0), "0\xa0seconds"),
        (timedelta(seconds=1), "1\xa0second"),
        (timedelta(seconds=45), "45\xa0seconds"),
        (timedelta(seconds=60), "1\xa0minute"),
        (timedelta(minutes=12, seconds=59), "12\xa0minutes"),
        (timedelta(hours=1, minutes=5), "1\xa0hour, 5\xa0minutes"),
        (timedelta(hours=47), "1\xa0day, 23\xa0hours"),
        (720, "12\xa0minutes"),
    ],
)
def test_a_duration_is_said_in_words(value, words):
    with translation.override("en"):
        assert duration(value) == words


def test_a_duration_is_said_in_chinese_too():
    with translation.override("zh-hans"):
        assert duration(timedelta(minutes=12)) == "12\xa0分钟"
        assert duration(timedelta(seconds=45)) == "45\xa0秒"
        assert duration(timedelta(hours=1, minutes=5)) == "1\xa0小时，5\xa0分钟"


def test_a_negative_duration_counts_as_none():
    with translation.override("en"):
        assert duration(timedelta(seconds=-30)) == "0\xa0seconds"


def test_nothing_to_say_says_nothing():
    assert duration(None) == "" and duration_since(None, NOW) == ""


def test_a_duration_since_a_moment_counts_up_to_now():
    with translation.override("en"):
        html = Template("{% load durations %}{{ since|duration_since:now }}").render(
            Context({"since": NOW - timedelta(minutes=12), "now": NOW})
        )
    assert html == "12\xa0minutes"

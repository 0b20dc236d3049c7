"""The reports' figures on the worked example of docs/reports.md, exactly."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta

import pytest

from messaging.archive import archive_changed
from messaging.models import MessageRecord
from reports.facts import AGENT, CUSTOMER, Rec, customer_facts
from reports.models import MessageDay
from reports.selectors import Period, Stat, nearest_rank, report_get
from reports.services import rollups_catch_up, rollups_rebuild
from tests.factories import AgentFactory, OfficialAccountFactory
from tests.reports.archives import DAY, example, rollups, store, utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    account = OfficialAccountFactory(time_zone="Asia/Shanghai", alert_queue_wait_seconds=180)
    AgentFactory(official_account=account, kf_account=f"xiaomei@{account.wechat_id}", kf_nick="小美")
    AgentFactory(official_account=account, kf_account=f"ahua@{account.wechat_id}", kf_nick="阿华")
    return account


def the_day(account) -> Period:
    return Period(DAY, DAY, account.zone)


def by_name(report):
    return {row.name: row for row in report.agents}


def test_each_agent_figure_of_the_worked_example(account):
    store(account, example(account.wechat_id))

    agents = by_name(report_get(account=account, period=the_day(account)))

    xiaomei, ahua = agents["小美"], agents["阿华"]
    assert (xiaomei.accepted, xiaomei.closed, xiaomei.transferred) == (2, 0, 1)
    assert (xiaomei.customers, xiaomei.sent, xiaomei.unanswered) == (2, 4, 0)
    assert xiaomei.first_response == Stat(count=2, median=30, p90=60, longest=60)
    assert xiaomei.reply == Stat(count=1, median=60, p90=60, longest=60)
    assert xiaomei.duration == Stat(count=1, median=235, p90=235, longest=235)
    assert (ahua.accepted, ahua.closed, ahua.transferred) == (2, 2, 0)
    assert (ahua.customers, ahua.sent, ahua.unanswered) == (1, 1, 1)
    assert ahua.first_response == Stat(count=1, median=40, p90=40, longest=40)
    assert ahua.reply == Stat()
    assert ahua.duration == Stat(count=2, median=240, p90=900, longest=900)


def test_the_team_figures_of_the_worked_example(account):
    store(account, example(account.wechat_id))

    report = report_get(account=account, period=the_day(account))
    team = report.team

    assert (team.messages_in, team.messages_out) == (7, 5)
    assert (team.accepted, team.customers, team.unanswered) == (4, 2, 1)
    assert team.first_response == Stat(count=3, median=40, p90=60, longest=60)
    assert team.reply == Stat(count=1, median=60, p90=60, longest=60)
    assert team.duration == Stat(count=3, median=240, p90=900, longest=900)
    assert team.queue == Stat(count=2, median=120, p90=300, longest=300)
    assert (team.queue_over, team.queue_over_share, team.queue_left, team.queue_waiting) == (1, 0.5, 1, 0)
    # Buckets are [lower, upper): 120 s is under 5 minutes, 300 s under 10.
    assert dict(team.wait_buckets) == {30: 0, 60: 0, 120: 0, 300: 1, 600: 1, 1800: 0, None: 0}
    # Local time (UTC+8): 18:00 to 21:00 on Monday.
    assert team.daily == [(DAY, 7, 5)]
    assert [row[18:22] for row in team.heat] == [[4, 1, 1, 1]] + [[0, 0, 0, 0]] * 6
    assert sum(map(sum, team.heat)) == 7
    assert len(team.hourly) == 24 and team.hourly[18][1:] == (4, 3) and team.hourly[21][1:] == (1, 2)


def test_figures_belong_to_the_days_of_the_accounts_time_zone(account):
    # 16:30 UTC on 2 March is 00:30 on 3 March in Shanghai.
    store(account, [(utc(16, 30), 1001, "xiaomei", "oE", ""), (utc(16, 31), 2003, "xiaomei", "oE", "hi")])

    that_day = report_get(account=account, period=the_day(account))
    next_day = report_get(account=account, period=Period(DAY + timedelta(days=1), DAY + timedelta(days=1), account.zone))

    assert that_day.team.accepted == 0 and that_day.team.messages_in == 0
    assert next_day.team.accepted == 1 and next_day.team.messages_in == 1


def test_the_previous_period_has_the_same_length_and_ends_the_day_before(account):
    week = Period(DAY, DAY + timedelta(days=6), account.zone)

    assert (week.previous().first, week.previous().last) == (DAY - timedelta(days=7), DAY - timedelta(days=1))
    store(account, [(at - timedelta(days=7), *rest) for at, *rest in example(account.wechat_id)])
    assert report_get(account=account, period=week.previous()).team.accepted == 4
    assert report_get(account=account, period=week).team.accepted == 0


def test_records_arriving_in_any_order_give_the_rebuilds_figures(account):
    rows = example(account.wechat_id)
    random.Random(7).shuffle(rows)
    store(account, rows)
    followed = rollups(account)

    rollups_rebuild(account_id=account.pk)

    assert rollups(account) == followed
    assert len(followed["sessions"]) == 4 and len(followed["responses"]) == 4


def test_a_rebuild_since_a_day_keeps_the_figures(account):
    store(account, example(account.wechat_id), tell=False)
    rollups_rebuild(account_id=account.pk)
    whole = rollups(account)

    rollups_rebuild(account_id=account.pk, since=utc(10, 5))

    assert rollups(account) == whole


def test_nearest_rank_percentiles():
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([30, 60], 0.5) == 30
    assert nearest_rank([30, 60], 0.9) == 60
    assert nearest_rank(list(range(1, 11)), 0.9) == 9
    assert nearest_rank(list(range(1, 12)), 0.9) == 10
    assert nearest_rank([5], 0.9) == 5


def test_a_close_while_queued_is_a_customer_who_left_and_forgets_the_unanswered_message():
    t = utc(9, 0)
    facts = customer_facts(
        [
            Rec(1, t, "", 2001),
            Rec(2, t + timedelta(seconds=1), "", 1000),
            Rec(3, t + timedelta(seconds=50), "", 1004),
            Rec(4, t + timedelta(seconds=60), "kf@x", 1002),
            Rec(5, t + timedelta(seconds=70), "kf@x", 2002),
        ]
    )

    assert [(q.outcome, q.ended_at - q.queued_at) for q in facts.queue] == [("left", timedelta(seconds=49))]
    # The session after the close starts with nothing to answer: no first response.
    assert facts.responses == [] and facts.sessions[0].asked_at is None


def direct_counts(account, period):
    """The message figures of the period counted straight from the archive."""
    sent: dict[str, int] = defaultdict(int)
    daily = {day: [0, 0] for day in period.dates()}
    heat = [[0] * 24 for _ in range(7)]
    for record in MessageRecord.objects.filter(official_account=account, time__gte=period.start, time__lt=period.end):
        local = record.time.astimezone(account.zone)
        if record.opercode == AGENT:
            sent[record.worker] += 1
            daily[local.date()][1] += 1
        elif record.opercode in CUSTOMER:
            daily[local.date()][0] += 1
            heat[local.weekday()][local.hour] += 1
    return dict(sent), [(day, i, o) for day, (i, o) in daily.items()], heat


def test_message_counts_over_days_and_their_edges_equal_the_archive(account):
    # Ten days of messages at every UTC hour (in Shanghai, local days begin at 16:00
    # UTC, so every period is whole UTC days plus 8 and 16 hours at its edges).
    rng = random.Random(3)
    rows = []
    for n in range(10 * 24):
        at = utc(0, 0) + timedelta(hours=n, minutes=rng.randrange(60))
        prefix = rng.choice(["xiaomei", "ahua", "ahua"])
        rows += [(at, 2003, prefix, f"o{n % 7}", "hi"), (at + timedelta(seconds=20), 2002, prefix, f"o{n % 7}", "yes")]
        if n % 5 == 0:
            rows.append((at + timedelta(seconds=40), 2001, "", f"o{n % 7}", "waiting"))
    store(account, rows)
    zone = account.zone
    periods = [Period(DAY + timedelta(days=a), DAY + timedelta(days=b), zone) for a, b in ((0, 0), (1, 1), (0, 1), (2, 8), (-1, 11))]
    assert MessageDay.objects.filter(official_account=account).count() > 10

    def check():
        for period in periods:
            report = report_get(account=account, period=period)
            sent, daily, heat = direct_counts(account, period)
            assert {a.worker: a.sent for a in report.agents if a.sent} == sent
            assert report.team.daily == daily and report.team.heat == heat
            assert (report.team.messages_in, report.team.messages_out) == (
                sum(i for _, i, _ in daily), sum(o for _, _, o in daily)
            )
            brief = report_get(account=account, period=period, detail=False).team
            assert (brief.messages_in, brief.messages_out) == (report.team.messages_in, report.team.messages_out)

    check()
    # Deleting records (a customer's, across days) recounts their hours and days.
    gone = MessageRecord.objects.filter(official_account=account, openid="o3", time__gte=utc(20, 0))
    changes = list(gone.values_list("openid", "time"))
    gone.delete()
    archive_changed(account_id=account.pk, changes=changes)
    rollups_catch_up(account_id=account.pk)
    check()
    followed = rollups(account)
    rollups_rebuild(account_id=account.pk)
    assert rollups(account) == followed

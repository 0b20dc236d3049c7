"""The reports page, its CSV downloads and the presence timeline: access, figures, input."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from accounts.models import AgentPresence
from messaging.archive import archive_changed
from reports.services import rollups_catch_up
from tests.factories import (
    AgentFactory,
    OfficialAccountFactory,
    agent_user,
    auditor,
    outsider,
    sent_to_login,
)
from tests.reports.archives import DAY, example, store, utc

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]
PERIOD = {"first": DAY.isoformat(), "last": DAY.isoformat()}


@pytest.fixture
def account():
    account = OfficialAccountFactory(time_zone="Asia/Shanghai")
    AgentFactory(official_account=account, kf_account=f"xiaomei@{account.wechat_id}", kf_nick="Xiaomei")
    AgentFactory(official_account=account, kf_account=f"ahua@{account.wechat_id}", kf_nick="Ahua")
    store(account, example(account.wechat_id))
    return account


def test_a_supervisor_sees_every_figure_and_chart(boss_client):
    page = boss_client.get("/reports/", PERIOD)

    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<svg") == 5  # agents, messages per day and per hour, heat map, queue waits
    for words in ("Xiaomei", "Ahua", "First response", "Left the queue unserved", "Waited over 3\xa0minutes", "50%"):
        assert words in html
    assert "<title" in html and "style=" not in html.split("<main", 1)[1]


def test_an_auditor_may_read_the_reports_and_an_agent_may_not(client, account):
    client.force_login(auditor(account))
    assert client.get("/reports/", PERIOD).status_code == 200
    client.force_login(agent_user(account, username="agent1"))
    assert client.get("/reports/", PERIOD).status_code == 403
    assert client.get("/reports/agents.csv", PERIOD).status_code == 403


def test_a_logged_out_visitor_is_sent_to_log_in(client, account):
    assert sent_to_login(client.get("/reports/"))
    assert sent_to_login(client.get("/reports/agents.csv"))


def test_another_accounts_supervisor_sees_only_their_own_figures(client, account):
    client.force_login(outsider())
    html = client.get("/reports/", PERIOD).content.decode()
    assert "Xiaomei" not in html
    agent = account.agents.first()
    assert client.get(f"/reports/agents/{agent.pk}/presence/").status_code == 404


def test_the_reports_answer_only_reads(boss_client):
    assert boss_client.post("/reports/", PERIOD).status_code == 405


def test_a_period_ending_before_it_starts_says_so_and_shows_the_default(boss_client):
    page = boss_client.get("/reports/", {"first": "2026-03-05", "last": "2026-03-01"})

    assert page.status_code == 200
    assert "The period ends before it starts" in page.content.decode()


def test_the_day_fields_show_the_days_reported(boss_client, account):
    from reports.selectors import period_default

    default = period_default(account=account)
    shown = boss_client.get("/reports/").content.decode()
    assert f'name="first" value="{default.first.isoformat()}"' in shown
    assert f'name="last" value="{default.last.isoformat()}"' in shown

    # One side given: the other is filled in as the report fills it.
    one_side = boss_client.get("/reports/", {"first": "2026-03-01"}).content.decode()
    assert 'name="last" value="2026-03-07"' in one_side


def test_a_day_that_is_not_a_date_is_refused(boss_client):
    page = boss_client.get("/reports/", {"first": "yesterday"})
    assert page.status_code == 200 and "Enter a valid date" in page.content.decode()


def test_the_agents_csv_has_the_bom_and_the_exact_figures(boss_client):
    response = boss_client.get("/reports/agents.csv", PERIOD)

    text = b"".join(response.streaming_content).decode()
    assert response["Content-Type"].startswith("text/csv") and text.startswith("\ufeffagent,")
    rows = {line.split(",")[0]: line.split(",") for line in text.splitlines()[1:]}
    assert rows["Xiaomei"][2:17] == ["2", "0", "1", "2", "4", "2", "30", "60", "1", "60", "60", "1", "235", "235", "0"]
    assert rows["Ahua"][2:7] == ["2", "2", "0", "1", "1"]


def test_csv_cells_that_look_like_formulas_are_neutralised(boss_client, account):
    AgentFactory(official_account=account, kf_account=f"evil@{account.wechat_id}", kf_nick="=HYPERLINK(\"x\")")

    text = b"".join(boss_client.get("/reports/agents.csv", PERIOD).streaming_content).decode()

    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text


@pytest.mark.parametrize("table", ["daily", "hourly", "heatmap", "queue"])
def test_every_table_downloads(boss_client, table):
    response = boss_client.get(f"/reports/{table}.csv", PERIOD)
    text = b"".join(response.streaming_content).decode()
    assert response.status_code == 200 and text.startswith("\ufeff") and len(text.splitlines()) > 1


def test_an_unknown_table_is_not_found(boss_client):
    assert boss_client.get("/reports/secrets.csv").status_code == 404


def test_the_presence_timeline_adds_up_the_online_time(boss_client, account):
    agent = account.agents.get(kf_nick="Ahua")
    # Online from 17:00 to 18:30 local (09:00-10:30 UTC), offline after.
    AgentPresence.objects.create(agent=agent, at=utc(9, 0), online_status=1, accepted_case=0)
    AgentPresence.objects.create(agent=agent, at=utc(10, 6), online_status=1, accepted_case=1)
    AgentPresence.objects.create(agent=agent, at=utc(10, 30), online_status=0, accepted_case=0)

    page = boss_client.get(f"/reports/agents/{agent.pk}/presence/", PERIOD)
    html = page.content.decode()

    assert page.status_code == 200 and "<svg" in html
    assert "1\xa0hour, 30\xa0minutes" in html  # total online
    assert "oA" in html and "oB" in html  # the sessions held
    tips = re.findall(r"<title>([^<]*online)</title>", html)
    assert tips and tips[0].split(" – ")[0].endswith("5 p.m.")  # the chart speaks the account's time, not UTC's 9 a.m.
    csv = b"".join(boss_client.get(f"/reports/agents/{agent.pk}/presence/", {**PERIOD, "format": "csv"}).streaming_content).decode()
    lines = csv.splitlines()
    assert lines[0] == "\ufefffrom,until,state,sessions_held,seconds"
    assert [line.split(",")[2:] for line in lines[1:]] == [
        ["unknown", "0", str(17 * 3600)], ["online", "0", "3960"], ["online", "1", "1440"], ["offline", "0", str(int(timedelta(hours=5, minutes=30).total_seconds()))],
    ]


def test_the_overview_links_each_online_agent_to_their_presence(boss_client, account):
    agent = account.agents.first()
    agent.online_status = 1
    agent.save()

    html = boss_client.get("/").content.decode()

    assert f"/reports/agents/{agent.pk}/presence/" in html


def test_the_page_says_how_many_customers_are_still_being_counted(boss_client, account):
    archive_changed(account_id=account.pk, changes=[("oA", utc(9, 0, 0)), ("oB", utc(9, 0, 0))])

    html = boss_client.get("/reports/", PERIOD).content.decode()
    assert "The records of 2 customers are still being counted" in html

    rollups_catch_up(account_id=account.pk)
    assert "still being counted" not in boss_client.get("/reports/", PERIOD).content.decode()

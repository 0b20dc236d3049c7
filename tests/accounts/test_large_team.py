"""A team of 1000 agents: the agents and users tables come a page at a time with a
search, and an agent field turns into a search-as-you-type field fed by
accounts:agent_options, while the server checks the agent as strictly as before."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.forms import AgentChoiceField
from accounts.models import Agent, Membership
from accounts.views import PAGE_SIZE
from tests.factories import (
    OfficialAccountFactory,
    UserFactory,
    agent_user,
    agents_bulk,
    auditor,
    outsider,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]

HTMX = {"HX-Request": "true"}
AGENTS = reverse("accounts:agents")
USERS = reverse("accounts:users")
OPTIONS = reverse("accounts:agent_options")


@pytest.fixture
def account():
    return OfficialAccountFactory()


@pytest.fixture
def team(account):
    return agents_bulk(account, 1000)


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="agent-(\d+)"', html)


# --------------------------------------------------------------------------- agents table


def test_the_agents_table_shows_one_page_of_a_thousand(boss_client, team, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = boss_client.get(AGENTS, headers=HTMX)

    html = response.content.decode()
    assert PAGE_SIZE == 50 and len(rows(html)) == 50
    assert "1000 agents" in html and "Showing 1–50 of 1000" in html
    assert "agent0000@" in html and "agent0049@" in html and "agent0050@" not in html
    assert "Page 1 of 20" in html and f'href="{AGENTS}?page=2"' in html


def test_the_query_count_does_not_grow_with_the_page(boss_client, account, django_assert_num_queries):
    """No query per row: 60 agents and 1000 agents read the same number of times."""
    agents_bulk(account, 60)
    boss_client.get(AGENTS, headers=HTMX)  # warm the session and the account context
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        boss_client.get(AGENTS, headers=HTMX)
    Agent.objects.filter(official_account=account).delete()
    agents_bulk(account, 1000)
    with django_assert_num_queries(len(small.captured_queries)):
        boss_client.get(AGENTS, headers=HTMX)


def test_page_two_is_the_next_fifty_and_its_poll_stays_there(boss_client, team):
    html = boss_client.get(AGENTS + "?page=2", headers=HTMX).content.decode()

    assert "Showing 51–100 of 1000" in html
    assert "agent0050@" in html and "agent0099@" in html and "agent0049@" not in html
    assert f'hx-get="{AGENTS}?page=2&amp;v=' in html  # the 15-second poll refreshes this page (with its token)


def test_a_page_past_the_end_shows_the_last_and_a_bad_page_the_first(boss_client, team):
    assert "Showing 951–1000 of 1000" in boss_client.get(AGENTS + "?page=99", headers=HTMX).content.decode()
    assert "Showing 1–50 of 1000" in boss_client.get(AGENTS + "?page=x", headers=HTMX).content.decode()


def test_searching_matches_kf_account_or_nickname_in_any_case(boss_client, team):
    by_account = boss_client.get(AGENTS + "?q=AGENT012", headers=HTMX).content.decode()
    by_nick = boss_client.get(AGENTS + "?q=客服0999", headers=HTMX).content.decode()

    assert len(rows(by_account)) == 10 and "10 matching agents" in by_account
    assert "Showing" not in by_account  # one page: no range to show
    assert len(rows(by_nick)) == 1 and "agent0999@" in by_nick
    assert f'hx-get="{AGENTS}?q=AGENT012&amp;v=' in by_account


def test_the_status_filter_keeps_the_online_offline_or_unbound(boss_client, team):
    online = boss_client.get(AGENTS + "?status=online", headers=HTMX).content.decode()
    unbound = boss_client.get(AGENTS + "?status=unbound&q=agent00", headers=HTMX).content.decode()
    offline = boss_client.get(AGENTS + "?status=offline", headers=HTMX).content.decode()

    assert "334 matching agents" in online and "Offline</td>" not in online
    assert "666 matching agents" in offline
    assert rows(unbound) == [str(a.pk) for a in team[:100:10]]


def test_a_search_that_matches_nothing_says_so(boss_client, team):
    html = boss_client.get(AGENTS + "?q=nobody", headers=HTMX).content.decode()

    assert "No agent matches this search." in html and "Show all agents" in html
    assert "No agents yet" not in html


def test_an_unknown_status_is_refused_in_words_and_everyone_shown(boss_client, team):
    html = boss_client.get(AGENTS + "?status=sleeping").content.decode()

    assert "Select a valid choice" in html
    assert "1000 agents" in html and len(rows(html)) == 50


def test_the_whole_agents_page_has_the_search_form(boss_client, team):
    html = boss_client.get(AGENTS + "?q=agent01&page=2").content.decode()

    assert 'role="search"' in html and 'value="agent01"' in html
    assert "Showing 51–100 of 100" in html
    assert f'href="{AGENTS}?q=agent01&amp;page=1"' in html


# --------------------------------------------------------------------------- users table


def test_the_users_table_is_paginated_and_searchable(boss_client, account, django_assert_max_num_queries):
    users = UserFactory.create_batch(120)
    Membership.objects.bulk_create(
        Membership(user=u, official_account=account, role=Membership.Role.AUDITOR) for u in users
    )

    with django_assert_max_num_queries(12):
        html = boss_client.get(USERS).content.decode()
    found = boss_client.get(USERS + f"?q={users[7].username.upper()}", headers=HTMX).content.decode()
    none = boss_client.get(USERS + "?q=zzz-nobody", headers=HTMX).content.decode()

    assert len(re.findall(r'<tr id="user-\d+"', html)) == 50
    assert "121 users" in html and "Showing 1–50 of 121" in html and "Page 1 of 3" in html
    assert f'id="user-{users[7].pk}"' in found
    assert "No user matches this search." in none


# --------------------------------------------------------------------------- agent field


def test_a_large_team_gets_a_text_field_not_a_thousand_options(account, team):
    field = AgentChoiceField(queryset=Agent.objects.filter(official_account=account), scope="bound")

    html = field.widget.render("agent", team[5].pk, attrs={"id": "id_agent"})

    assert "<select" not in html and "<option" not in html
    assert 'type="text"' in html and 'list="id_agent-options"' in html and '<datalist id="id_agent-options">' in html
    assert f'value="{team[5].kf_account}"' in html  # the chosen agent, as the field takes it
    assert f'hx-get="{OPTIONS}?scope=bound&amp;field=agent"' in html
    assert 'aria-describedby="id_agent-hint"' in html and len(html) < 2000


def test_a_small_team_keeps_its_drop_down(account, settings):
    agents = agents_bulk(account, 3)
    field = AgentChoiceField(queryset=Agent.objects.filter(official_account=account))

    html = field.widget.render("agent", agents[0].pk)

    assert "<select" in html and html.count("<option") == 4


def test_the_field_takes_an_id_or_a_kf_account_of_its_list_only(account, team):
    field = AgentChoiceField(queryset=Agent.objects.filter(official_account=account).exclude(kf_wx=""))
    other = agents_bulk(OfficialAccountFactory(), 1)[0]

    assert field.clean(team[1].kf_account) == team[1]
    assert field.clean(f"  {team[1].kf_account} ") == team[1]
    assert field.clean(str(team[2].pk)) == team[2]
    for bad in (team[0].kf_account, other.kf_account, "agent0001", "nobody@x", "客服0001"):
        with pytest.raises(Exception, match="valid choice"):
            field.clean(bad)


# --------------------------------------------------------------------------- suggestions


def options(client, scope: str, q: str) -> list[str]:
    html = client.get(OPTIONS, {"scope": scope, "field": "agent", "agent": q}, headers=HTMX).content.decode()
    return re.findall(r'<option value="([^"]+)"', html)


def test_suggestions_are_at_most_twenty_prefix_matches_first(boss_client, team, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        first = options(boss_client, "listed", "")
    assert len(first) == 20
    assert options(boss_client, "listed", "AGENT099") == [f"agent099{i}@{team[0].official_account.wechat_id}" for i in range(10)]
    assert options(boss_client, "listed", "客服0123") == [team[123].kf_account]
    assert options(boss_client, "listed", "nobody") == []


def test_bound_suggestions_skip_the_unbound_and_put_the_online_first(boss_client, team):
    got = options(boss_client, "bound", "agent00")
    html = boss_client.get(OPTIONS, {"scope": "bound", "field": "agent", "agent": "agent000"}).content.decode()

    assert team[0].kf_account not in got and team[10].kf_account not in got  # unbound
    assert got[0] == team[3].kf_account  # online before offline
    assert "· online" in html and "· offline" in html


def test_any_suggestions_include_agents_wechat_no_longer_lists(boss_client, account, team):
    Agent.objects.filter(pk=team[7].pk).update(deleted_at="2024-01-01T00:00:00Z")

    assert options(boss_client, "listed", "agent0007") == []
    assert options(boss_client, "any", "agent0007") == [team[7].kf_account]


def test_suggestions_escape_what_wechat_stored(boss_client, account):
    agents_bulk(account, 1)
    Agent.objects.filter(official_account=account).update(kf_nick="<b>x</b>")

    html = boss_client.get(OPTIONS, {"scope": "listed", "field": "agent", "agent": ""}).content.decode()

    assert "<b>" not in html and "&lt;b&gt;" in html


def test_an_unknown_scope_is_a_400(boss_client, team):
    response = boss_client.get(OPTIONS, {"scope": "everyone", "field": "agent", "agent": ""})

    assert response.status_code == 400 and "Unknown list of agents" in response.content.decode()


def test_an_agent_is_only_offered_their_own_agent_and_an_auditor_the_list(client, account, team):
    client.force_login(agent_user(account, agent=team[4], username="worker"))
    assert options(client, "listed", "agent") == [team[4].kf_account]
    client.force_login(auditor(account))
    assert len(options(client, "any", "agent")) == 20


def test_suggestions_need_a_login_and_stay_in_ones_account(client, account, team):
    anonymous = client.get(OPTIONS, {"scope": "listed", "field": "agent", "agent": ""})
    assert anonymous.status_code in (302, 401, 403)
    client.force_login(outsider())
    assert options(client, "listed", "agent") == []


# --------------------------------------------------------------------------- the roles form


def test_the_add_user_form_of_a_large_team_takes_the_kf_account_typed(boss_client, account, team):
    url = reverse("accounts:user_add")
    page = boss_client.get(url).content.decode()
    password = "tea-and-dumplings-77"
    post = {"username": "xiaoming", "password1": password, "password2": password, f"role_{account.pk}": "agent"}

    refused = boss_client.post(url, {**post, f"agent_{account.pk}": "agent12345@nowhere"}).content.decode()
    created = boss_client.post(url, {**post, f"agent_{account.pk}": team[42].kf_account})

    assert page.count("<option") < 10 and f'list="id_agent_{account.pk}-options"' in page
    assert "Select a valid choice" in refused and 'value="agent12345@nowhere"' in refused
    assert created.status_code == 302
    membership = Membership.objects.get(user__username="xiaoming")
    assert (membership.role, membership.agent) == ("agent", team[42])

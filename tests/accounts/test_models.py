"""The domain's words on the accounts models."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from accounts.models import Agent, OfficialAccount
from tests.factories import AgentFactory, OfficialAccountFactory


def test_an_accounts_zone_is_its_time_zone():
    assert OfficialAccount(time_zone="Europe/Berlin").zone == ZoneInfo("Europe/Berlin")


def test_an_unknown_or_empty_time_zone_falls_back_to_the_projects(settings):
    settings.TIME_ZONE = "America/New_York"
    assert OfficialAccount(time_zone="Mars/Olympus_Mons").zone == ZoneInfo("America/New_York")
    assert OfficialAccount(time_zone="").zone == ZoneInfo("America/New_York")
    assert OfficialAccount(time_zone="../etc/passwd").zone == ZoneInfo("America/New_York")


def test_an_agent_is_called_by_its_nickname():
    agent = Agent(kf_account="kf1@oa_shop", kf_nick="小王")
    assert agent.display_name == "小王"
    assert str(agent) == "小王 (kf1@oa_shop)"


def test_an_agent_without_a_nickname_is_called_by_its_kf_account():
    assert Agent(kf_account="kf1@oa_shop", kf_nick="").display_name == "kf1@oa_shop"


@pytest.mark.django_db
def test_listed_agents_are_the_ones_wechat_still_lists():
    account = OfficialAccountFactory()
    kept = AgentFactory(official_account=account)
    AgentFactory(official_account=account, deleted_at=timezone.now())
    assert list(Agent.objects.listed()) == [kept]
    assert list(account.agents.listed()) == [kept]

"""The one field for choosing an agent, on every form that asks for one."""

from __future__ import annotations

import pytest
from django.utils import timezone, translation

from accounts.forms import AgentChoiceField, bound_agents
from tests.factories import AgentFactory, OfficialAccountFactory


@pytest.mark.django_db
def test_an_agent_is_offered_by_name_and_kf_account():
    agent = AgentFactory(kf_nick="小王", kf_account="wang@oa")
    field = AgentChoiceField()
    assert field.label_from_instance(agent) == "小王 (wang@oa)"


@pytest.mark.django_db
def test_with_presence_the_choice_says_who_is_online():
    online = AgentFactory(kf_nick="小王", kf_account="wang@oa", online_status=1)
    offline = AgentFactory(kf_nick="", kf_account="li@oa", online_status=0)
    field = AgentChoiceField(presence=True)
    with translation.override("en"):
        assert field.label_from_instance(online) == "小王 (wang@oa) · online"
        assert field.label_from_instance(offline) == "li@oa (li@oa) · offline"


@pytest.mark.django_db
def test_only_listed_agents_bound_to_a_wechat_user_are_offered_online_first():
    account = OfficialAccountFactory()
    offline = AgentFactory(official_account=account, kf_account="a@oa", online_status=0)
    online = AgentFactory(official_account=account, kf_account="b@oa", online_status=1)
    AgentFactory(official_account=account, kf_account="c@oa", kf_wx="")
    AgentFactory(official_account=account, kf_account="d@oa", deleted_at=timezone.now())
    AgentFactory(kf_account="e@other")

    assert list(bound_agents(account)) == [online, offline]
    assert list(bound_agents(account, only=offline)) == [offline]

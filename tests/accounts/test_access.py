"""The account context every page and poll resolves first (accounts/access.py)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from accounts.access import SESSION_KEY, current_context
from accounts.models import Membership
from tests.factories import AgentFactory, OfficialAccountFactory, UserFactory, agent_user, auditor

pytestmark = pytest.mark.django_db


def _request(user, account):
    request = RequestFactory().get("/")
    request.user = user
    request.session = {SESSION_KEY: account.pk}
    return request


def test_an_agent_gets_account_role_and_kf_account_in_one_query(django_assert_num_queries):
    account = OfficialAccountFactory(name="Tea shop")
    agent = AgentFactory(official_account=account, kf_nick="Mei")
    user = agent_user(account, agent=agent)
    with django_assert_num_queries(1):
        ctx = current_context(_request(user, account))
        assert (ctx.account.pk, ctx.account.name, ctx.role) == (account.pk, "Tea shop", Membership.Role.AGENT)
        assert (ctx.agent.pk, ctx.agent.kf_nick, ctx.agent.official_account_id) == (agent.pk, "Mei", account.pk)
    # What no request needs to be authorised is left for later.
    assert {"secret", "access_token", "created_at"} <= ctx.account.get_deferred_fields()


def test_only_an_agent_works_as_a_kf_account():
    account = OfficialAccountFactory()
    user = auditor(account)
    Membership.objects.filter(user=user).update(agent=AgentFactory(official_account=account))
    ctx = current_context(_request(user, account))
    assert ctx.role == Membership.Role.AUDITOR and ctx.agent is None


def test_an_inactive_account_gives_no_context_even_to_a_superuser():
    account = OfficialAccountFactory(is_active=False)
    assert current_context(_request(auditor(account), account)) is None
    superuser = UserFactory(username="root", is_superuser=True)
    assert current_context(_request(superuser, account)) is None
    account.is_active = True
    account.save()
    assert current_context(_request(superuser, account)).role == Membership.Role.SUPERVISOR

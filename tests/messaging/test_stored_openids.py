"""Pages stay up when the archive holds an openid that WeChat would never send (one
stored before the callback receiver checked them): it is shown escaped, and its
links lead back to it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions_app.models import KfSession
from tests.factories import CustomerFactory, KfSessionFactory, OfficialAccountFactory
from tests.sessions_app.test_views_support import archive

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

ODD = 'o/x"><svg onload=alert(1)>'


@pytest.fixture
def account():
    return OfficialAccountFactory()


def test_the_history_page_shows_an_odd_openid_escaped(boss_client, account):
    archive(account, ODD, "hello")
    response = boss_client.get(reverse("messaging:history"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<svg" not in body
    assert "o/x&quot;&gt;&lt;svg onload=alert(1)&gt;" in body


def test_its_conversation_link_leads_back_to_it(boss_client, account):
    archive(account, ODD, "hello")
    link = reverse("messaging:conversation", args=[ODD])
    assert "/" not in link.removeprefix("/conversations/").removesuffix("/")
    response = boss_client.get(link)
    assert response.status_code == 200
    assert response.context["openid"] == ODD
    assert b"hello" in response.content
    assert boss_client.get(reverse("messaging:transcript", args=[ODD])).status_code == 200


def test_the_queue_shows_a_waiting_customer_with_an_odd_openid(boss_client, account):
    customer = CustomerFactory(official_account=account, openid=ODD)
    KfSessionFactory(official_account=account, customer=customer, state=KfSession.State.WAITING)
    response = boss_client.get(reverse("sessions_app:queue"))
    assert response.status_code == 200
    assert "<svg" not in response.content.decode()


@pytest.mark.parametrize("openid", ["o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "o-abc_DEF-123"])
def test_a_real_openid_keeps_its_plain_url(openid):
    assert reverse("messaging:conversation", args=[openid]) == f"/conversations/{openid}/"

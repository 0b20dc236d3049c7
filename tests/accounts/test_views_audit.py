"""The audit log page: filters, keyset pages, roles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from accounts.selectors import audit_events
from tests.factories import (
    AuditEventFactory,
    OfficialAccountFactory,
    UserFactory,
    agent_user,
    auditor,
    aware,
    outsider,
    supervisor,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]

HTMX = {"HX-Request": "true"}
URL = "/audit/"


@pytest.fixture
def account():
    return OfficialAccountFactory()


def test_the_url_is_named():
    assert reverse("accounts:audit") == URL


@pytest.mark.parametrize("persona", [supervisor, auditor])
def test_supervisors_and_auditors_read_the_log(client, account, persona):
    mei = UserFactory(username="mei")
    AuditEventFactory(official_account=account, actor=mei, action="agent_add", target="kf1@shop", params={"nickname": "小美"})
    AuditEventFactory(
        official_account=account, actor=None, actor_label="system", action="agent_delete", result="error", errcode=65401,
        message="This kf account does not exist. Refresh the agent list; it may have been deleted.",
    )
    client.force_login(persona(account))

    response = client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert "mei" in html and "Add agent" in html and "kf1@shop" in html and "nickname=小美" in html
    assert "65401" in html and "does not exist" in html and "failed" in html


def test_an_agent_gets_403(client, account):
    client.force_login(agent_user(account))

    assert client.get(URL).status_code == 403
    assert client.get(URL, headers=HTMX).status_code == 403


def test_another_accounts_events_are_not_shown(client, account):
    AuditEventFactory(official_account=account, target="secret-target")
    client.force_login(outsider())

    assert "secret-target" not in client.get(URL).content.decode()


def test_it_needs_a_login(client):
    response = client.get(URL)

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_it_refuses_post(client, account):
    client.force_login(supervisor(account))

    assert client.post(URL).status_code == 405


def test_filters_by_person_action_and_days(client, account):
    mei, lei = UserFactory(username="mei"), UserFactory(username="lei")
    AuditEventFactory(official_account=account, actor=mei, action="agent_add", target="a-match", at=aware(2024, 3, 10, 12))
    AuditEventFactory(official_account=account, actor=lei, action="agent_add", target="b-other-person", at=aware(2024, 3, 10, 12))
    AuditEventFactory(official_account=account, actor=mei, action="agent_delete", target="c-other-action", at=aware(2024, 3, 10, 12))
    AuditEventFactory(official_account=account, actor=mei, action="agent_add", target="d-too-early", at=aware(2024, 3, 8, 23, 59))
    AuditEventFactory(official_account=account, actor=mei, action="agent_add", target="e-too-late", at=aware(2024, 3, 12, 0, 0))
    client.force_login(supervisor(account))

    response = client.get(URL, {"actor": mei.pk, "action": "agent_add", "day_from": "2024-03-09", "day_to": "2024-03-11"}, headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="audit-results"')
    assert "a-match" in html
    for other in ("b-other-person", "c-other-action", "d-too-early", "e-too-late"):
        assert other not in html


def test_the_filter_form_offers_the_people_and_actions_in_the_log(client, account):
    AuditEventFactory(official_account=account, actor=UserFactory(username="mei"), action="session_close")
    client.force_login(supervisor(account))

    html = client.get(URL).content.decode()

    assert ">mei</option>" in html and "Close session</option>" in html


def test_days_are_in_the_accounts_time_zone(client, account):
    # 23:30 on 3 March in Shanghai is 15:30 UTC: it belongs to the 3rd, not the 4th.
    AuditEventFactory(official_account=account, target="late-evening", at=aware(2024, 3, 3, 23, 30))
    client.force_login(supervisor(account))

    assert "late-evening" in client.get(URL, {"day_from": "2024-03-03", "day_to": "2024-03-03"}).content.decode()
    assert "late-evening" not in client.get(URL, {"day_from": "2024-03-04"}).content.decode()


def test_an_end_before_the_start_is_an_error_next_to_the_field(client, account):
    client.force_login(supervisor(account))

    response = client.get(URL, {"day_from": "2024-03-05", "day_to": "2024-03-01"})

    assert response.context["form"].errors["day_to"]
    assert "not valid" in response.content.decode()


def test_nothing_matching_says_so_with_a_way_back(client, account):
    client.force_login(supervisor(account))

    html = client.get(URL, {"action": "", "day_from": "2030-01-01"}).content.decode()

    assert "Nothing matches these filters" in html


def test_an_empty_log_explains_what_will_appear(client, account):
    client.force_login(supervisor(account))
    AuditEvent.objects.all().delete()  # the login itself

    assert "Nothing has been recorded yet" in client.get(URL).content.decode()


def test_pages_follow_each_other_without_gaps_or_repeats(account):
    start = aware(2024, 1, 1)
    # Several events share a timestamp, so the page boundary falls inside a tie.
    for index in range(7):
        AuditEventFactory(official_account=account, target=f"e{index}", at=start + timedelta(minutes=index // 3))

    seen, cursor = [], ""
    while True:
        page = audit_events(account=account, cursor=cursor, limit=2)
        seen += [event.target for event in page.events]
        if not page.next_cursor:
            break
        cursor = page.next_cursor

    assert sorted(seen) == [f"e{i}" for i in range(7)]
    assert len(seen) == 7


def test_the_older_link_carries_the_filters_and_the_cursor(client, account):
    for index in range(60):
        AuditEventFactory(official_account=account, action="agent_add", target=f"t{index:02d}", at=aware(2024, 1, 1) + timedelta(seconds=index))
    client.force_login(supervisor(account))

    first = client.get(URL, {"action": "agent_add"})
    cursor = first.context["page"].next_cursor
    html = first.content.decode()
    assert f"cursor={cursor}" in html and "action=agent_add" in html
    assert "t59" in html and "t09" not in html

    second = client.get(URL, {"action": "agent_add", "cursor": cursor}, headers=HTMX).content.decode()
    assert "t09" in second and "t59" not in second
    assert "Newest" in second


def test_a_garbled_cursor_starts_from_the_newest(client, account):
    AuditEventFactory(official_account=account, target="newest-one")
    client.force_login(supervisor(account))

    assert "newest-one" in client.get(URL, {"cursor": "not-a-cursor"}).content.decode()


def test_messages_from_wechat_data_are_escaped(client, account):
    AuditEventFactory(official_account=account, target="<b>bold</b>", message="<img src=x>")
    client.force_login(supervisor(account))

    html = client.get(URL).content.decode()

    assert "<b>bold</b>" not in html and "<img src=x>" not in html
